"""The SOQL subset the Salesforce emulator answers, parsed and evaluated over dict records.

``SELECT f, ... FROM Obj [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...]
[LIMIT n] [OFFSET n]`` where ``cond`` combines ``f = v``, ``f != v``, ``<``, ``>``, ``<=``,
``>=``, ``f [NOT] IN (v, ...)``, ``f LIKE 'x%'`` with ``AND``, ``OR``, ``NOT`` and
parentheses. Values: ``'strings'`` (``\\'`` escapes), numbers, ``true``/``false``, ``null``.
String comparisons are case-insensitive, as in Salesforce. No relationship paths, no
aggregates, no date literals: the emulator answers MALFORMED_QUERY for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Query", "SoqlError", "parse"]

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op><=|>=|!=|<>|[=<>(),])"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Query:
    fields: list[str]
    sobject: str
    where: Any = None
    order: list[tuple[str, bool, bool | None]] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0

    def referenced(self) -> list[str]:
        names: list[str] = []

        def walk(node: Any) -> None:
            if node is None:
                return
            if node[0] in ("and", "or"):
                walk(node[1])
                walk(node[2])
            elif node[0] == "not":
                walk(node[1])
            else:
                names.append(node[1])

        walk(self.where)
        return names

    def matches(self, record: dict[str, Any]) -> bool:
        return self.where is None or _eval(self.where, record)

    def run(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = [r for r in records if self.matches(r)]
        for name, ascending, nulls_first in reversed(self.order):
            first = ascending if nulls_first is None else nulls_first
            present = [r for r in rows if r.get(name) is not None]
            absent = [r for r in rows if r.get(name) is None]
            present.sort(key=lambda r, n=name: _key(r[n]), reverse=not ascending)
            rows = absent + present if first else present + absent
        rows = rows[self.offset :]
        if self.limit is not None:
            rows = rows[: self.limit]
        return rows


def _key(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return value.lower()
    return value


def _eval(node: Any, record: dict[str, Any]) -> bool:
    kind = node[0]
    if kind == "and":
        return _eval(node[1], record) and _eval(node[2], record)
    if kind == "or":
        return _eval(node[1], record) or _eval(node[2], record)
    if kind == "not":
        return not _eval(node[1], record)
    _, name, op, value = node
    actual = record.get(name)
    if op == "in":
        return _norm(actual) in value
    if op == "not in":
        return _norm(actual) not in value
    if op == "like":
        if actual is None:
            return False
        pattern = "^" + re.escape(str(value).lower()).replace("%", ".*").replace("_", ".") + "$"
        return re.match(pattern, str(actual).lower()) is not None
    if op in ("=", "!=", "<>"):
        equal = _norm(actual) == _norm(value)
        return equal if op == "=" else not equal
    if actual is None or value is None:
        return False
    a, b = _norm(actual), _norm(value)
    return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise SoqlError("MALFORMED_QUERY", f"unexpected token near: {text[pos : pos + 20]}")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def word(self, *words: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].upper() in words:
            self.i += 1
            return True
        return False

    def expect_word(self, word: str) -> None:
        if not self.word(word):
            raise SoqlError("MALFORMED_QUERY", f"expecting {word}, got {self.peek()}")

    def op(self, *ops: str) -> str | None:
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in ops:
            self.i += 1
            return tok[1]
        return None

    def ident(self) -> str:
        tok = self.peek()
        if not tok or tok[0] != "word":
            raise SoqlError("MALFORMED_QUERY", f"expecting a field name, got {tok}")
        if "." in tok[1]:
            raise SoqlError("MALFORMED_QUERY", "relationship paths are not emulated")
        self.i += 1
        return tok[1]

    def value(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise SoqlError("MALFORMED_QUERY", "expecting a value")
        self.i += 1
        kind, text = tok
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "word" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if kind == "word" and text.lower() == "null":
            return None
        raise SoqlError("MALFORMED_QUERY", f"unexpected value {text}")

    def expr(self) -> Any:
        node = self.conj()
        while self.word("OR"):
            node = ("or", node, self.conj())
        return node

    def conj(self) -> Any:
        node = self.unary()
        while self.word("AND"):
            node = ("and", node, self.unary())
        return node

    def unary(self) -> Any:
        if self.word("NOT"):
            return ("not", self.unary())
        if self.op("("):
            node = self.expr()
            if not self.op(")"):
                raise SoqlError("MALFORMED_QUERY", "expecting )")
            return node
        name = self.ident()
        negated = self.word("NOT")
        if self.word("IN"):
            if not self.op("("):
                raise SoqlError("MALFORMED_QUERY", "expecting ( after IN")
            values = [self.value()]
            while self.op(","):
                values.append(self.value())
            if not self.op(")"):
                raise SoqlError("MALFORMED_QUERY", "expecting ) after IN list")
            # The list as a set of normalised values, once per query rather than per record.
            members = frozenset(_norm(v) for v in values)
            return ("cmp", name, "not in" if negated else "in", members)
        if negated:
            raise SoqlError("MALFORMED_QUERY", "NOT must precede IN here")
        if self.word("LIKE"):
            return ("cmp", name, "like", self.value())
        op = self.op("=", "!=", "<>", "<", ">", "<=", ">=")
        if op is None:
            raise SoqlError("MALFORMED_QUERY", f"expecting an operator after {name}")
        return ("cmp", name, op, self.value())

    def query(self) -> Query:
        self.expect_word("SELECT")
        fields = [self.ident()]
        while self.op(","):
            fields.append(self.ident())
        self.expect_word("FROM")
        q = Query(fields=fields, sobject=self.ident())
        if self.word("WHERE"):
            q.where = self.expr()
        if self.word("ORDER"):
            self.expect_word("BY")
            while True:
                name = self.ident()
                ascending = not self.word("DESC")
                if ascending:
                    self.word("ASC")
                nulls: bool | None = None
                if self.word("NULLS"):
                    nulls = self.word("FIRST")
                    if not nulls:
                        self.expect_word("LAST")
                q.order.append((name, ascending, nulls))
                if not self.op(","):
                    break
        if self.word("LIMIT"):
            q.limit = int(self.value())
        if self.word("OFFSET"):
            q.offset = int(self.value())
        if self.peek() is not None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {self.peek()}")
        return q


def parse(text: str) -> Query:
    """Parse one SOQL query of the emulated subset (raises :class:`SoqlError`)."""
    return _Parser(text).query()
