"""Reading the config file: YAML with line numbers, ``${VAR}``, ``*_file``, and the errors.

Every problem found is reported at once, each as ``FILE:LINE: key.path: what is wrong (how to
fix it)``. Structural errors come from the pydantic models of :mod:`acw_sync.config`; then the
parts only plugins know are checked: connector ``options`` by the plugin's config model,
provider settings by the provider's, the ``analyzer`` section by the analyzer's settings model
(when that package is installed), and the names routes and instances refer to.

Secrets never reach a message: only pydantic's description of an error is used, never the
input value.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from acw_sync.config import AppConfig
from acw_sync.errors import ConfigError

__all__ = ["read_config"]

Path_ = tuple[str | int, ...]
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Problems:
    """Problems with their place in the file; rendered sorted by line."""

    def __init__(self, file: Path, lines: Mapping[Path_, int], data: Any) -> None:
        self.file = file
        self.lines = lines
        self.data = data
        self.found: list[tuple[int, str]] = []

    def add(self, path: Path_, message: str) -> None:
        line = 0
        for cut in range(len(path), -1, -1):
            if path[:cut] in self.lines:
                line = self.lines[path[:cut]]
                break
        key = _dotted(path) or "(top level)"
        where = f"{self.file}:{line}" if line else str(self.file)
        entry = (line, f"{where}: {key}: {message}")
        if entry not in self.found:
            self.found.append(entry)

    def raise_if_any(self) -> None:
        if self.found:
            error = ConfigError([m for _, m in sorted(self.found, key=lambda x: x[0])])
            error.file = str(self.file)
            raise error


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# -- YAML with lines ---------------------------------------------------------------------------
def _line_map(node: yaml.Node | None, path: Path_ = ()) -> dict[Path_, int]:
    lines: dict[Path_, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            here = (*path, key)
            lines[here] = key_node.start_mark.line + 1
            if key.endswith("_file"):  # the secret lands under the key without the suffix
                lines[(*path, key[: -len("_file")])] = key_node.start_mark.line + 1
            lines.update(_line_map(value_node, here))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            lines.update(_line_map(item, (*path, i)))
    return lines


def _duplicates(node: yaml.Node | None, problems: _Problems, path: Path_ = ()) -> None:
    """YAML keeps the last of two equal keys silently; an admin means one of them."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key, line = str(key_node.value), key_node.start_mark.line + 1
            if key in seen:
                problems.found.append(
                    (
                        line,
                        f"{problems.file}:{line}: {_dotted((*path, key))}: key given twice "
                        f"(also on line {seen[key]}; YAML would keep only this one: remove one)",
                    )
                )
            seen.setdefault(key, line)
            _duplicates(value_node, problems, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _duplicates(item, problems, (*path, i))


def _substitute(value: Any, env: Mapping[str, str], path: Path_, problems: _Problems) -> Any:
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.add(
                path,
                f"environment variable {name} is not set "
                f"(set it, or write ${{{name}:-default}} for a default)",
            )
            return ""

        return _VAR.sub(repl, value)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            sub = _substitute(v, env, (*path, str(k)), problems)
            if isinstance(k, str) and k.endswith("_file") and isinstance(sub, str):
                try:
                    out[k[: -len("_file")]] = Path(sub).read_text().strip()
                except OSError as exc:
                    out[k[: -len("_file")]] = ""  # reported here; not again as "missing"
                    problems.add(
                        (*path, k),
                        f"cannot read secret file {sub}: {exc.strerror} "
                        "(mount the file there, or give the value without _file)",
                    )
            else:
                out[k] = sub
        return out
    if isinstance(value, list):
        return [_substitute(v, env, (*path, i), problems) for i, v in enumerate(value)]
    return value


# -- pydantic errors, in the admin's words -------------------------------------------------------
def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Optional / Union / Annotated."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for a in typing.get_args(annotation) for t in _unwrap(a)]
    return [annotation]


def _model_at(model: type[BaseModel], path: Path_) -> type[BaseModel] | None:
    """The pydantic model that owns the keys at ``path`` (for "did you mean")."""
    current: list[Any] = [model]
    for part in path:
        following: list[Any] = []
        for candidate in current:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                field = candidate.model_fields.get(str(part))
                if field is not None:
                    following.extend(_unwrap(field.annotation))
            elif typing.get_origin(candidate) in (dict, list):
                following.extend(_unwrap(typing.get_args(candidate)[-1]))
        current = following
    for candidate in current:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _clean(loc: Sequence[str | int], data: Any, keep_last: bool) -> Path_:
    """Drop pydantic's union tags (``str``, ``function-after[...]``) from a location."""
    out: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        if (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and part < len(current)
        ):
            out.append(part)
            container: Any = current
            current = container[part]
        elif keep_last and i == len(loc) - 1:
            out.append(part)
    return tuple(out)


def _describe(err: Any, path: Path_, root: type[BaseModel], depth: int = 0) -> str:
    """What is wrong and how to fix it; ``path[depth:]`` is the path inside ``root``."""
    kind, msg = err["type"], err["msg"]
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        model = _model_at(root, path[depth:-1])
        allowed = list(model.model_fields) if model else []
        if model is AppConfig:
            allowed.remove("source")
        close = difflib.get_close_matches(str(path[-1]), allowed, n=1)
        hint = f'did you mean "{close[0]}"? ' if close else "remove it, or "
        return f"unknown key ({hint}allowed here: {', '.join(allowed)})"
    if kind == "missing":
        return f"required key is missing (add {path[-1]}: ...)"
    if kind in ("literal_error", "enum"):
        return f"{msg[0].lower()}{msg[1:]} (use one of the listed values)"
    if kind in ("int_parsing", "float_parsing", "int_type", "float_type"):
        return f"{msg[0].lower()}{msg[1:]} (write a number)"
    if kind in ("bool_parsing", "bool_type"):
        return "must be true or false"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a mapping of keys (key: value), not a single value or a list"
    if kind == "list_type":
        return "must be a list (- item lines, or [a, b])"
    if kind in ("string_type",):
        return "must be text (quote it if YAML reads it as a number or date)"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{msg[0].lower()}{msg[1:]} (change the value)"
    if kind in ("too_short", "too_long"):
        return f"{msg[0].lower()}{msg[1:]}"
    if kind.startswith(("date_", "datetime_")):
        return f"{msg[0].lower()}{msg[1:]} (write a date as YYYY-MM-DD)"
    if kind == "string_pattern_mismatch" and path and path[-1] == "id":
        return "must be lower-case letters, digits, - and _ (for example callback-missed)"
    if kind in ("template", "due", "condition", "duplicate"):
        return str(ctx.get("reason") or msg)
    if kind == "value_error":
        return str(msg).removeprefix("Value error, ")
    return f"{msg[0].lower()}{msg[1:]}"


class _Loader(yaml.SafeLoader):
    """YAML without implicit timestamps: dates stay text for pydantic to check (with a line)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _structure(data: dict[str, Any], problems: _Problems) -> AppConfig | None:
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        for err in errors:
            ctx = err.get("ctx") or {}
            loc = [*err["loc"], *ctx.get("path", ())] if "path" in ctx else list(err["loc"])
            keep_last = err["type"] in ("missing", "extra_forbidden")
            if "path" in ctx and err["type"] == "duplicate":
                loc = list(ctx["path"])
            path = _clean(loc, data, keep_last or "path" in ctx)
            problems.add(path, _describe(err, path, AppConfig))
        return None


# -- what only the plugins know ----------------------------------------------------------------
def _plugin_errors(problems: _Problems, base: Path_, model: type[BaseModel], values: Any) -> None:
    try:
        model.model_validate(values)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            path = (*base, *_clean(err["loc"], values, True))
            problems.add(path, _describe(err, path, model, len(base)))


def _names(problems: _Problems, path: Path_, given: str, known: Sequence[str], what: str) -> None:
    if given in known:
        return
    close = difflib.get_close_matches(given, list(known), n=1)
    hint = f'did you mean "{close[0]}"? ' if close else ""
    problems.add(path, f"no {what} named {given!r} ({hint}known: {', '.join(known) or 'none'})")


def _mapping(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _check_connectors(data: dict[str, Any], problems: _Problems) -> None:
    from acw_sync.connector import available_connectors

    installed = available_connectors()
    for name, spec in _mapping(data, "connectors").items():
        if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            continue
        where = ("connectors", str(name))
        if spec["type"] not in installed:
            _names(
                problems,
                (*where, "type"),
                spec["type"],
                sorted(installed),
                "connector type installed",
            )
        elif isinstance(spec.get("options", {}), dict):
            model = installed[spec["type"]].config_model
            _plugin_errors(problems, (*where, "options"), model, spec.get("options") or {})


def _check_providers(data: dict[str, Any], problems: _Problems) -> None:
    from acw_sync.provider import available_providers

    known = available_providers()
    for name, settings in _mapping(data, "providers").items():
        if name not in known:
            _names(
                problems, ("providers", str(name)), str(name), sorted(known), "provider installed"
            )
        elif isinstance(settings, dict):
            _plugin_errors(problems, ("providers", str(name)), known[name].config_model, settings)


def _check_routes(data: dict[str, Any], problems: _Problems) -> None:
    providers = list(_mapping(data, "providers"))
    instances = list(_mapping(data, "connectors"))
    for i, route in enumerate(data.get("routes") or []):
        if not isinstance(route, dict):
            continue
        match = route.get("match")
        if providers and isinstance(match, dict) and isinstance(match.get("provider"), str):
            _names(
                problems,
                ("routes", i, "match", "provider"),
                match["provider"],
                providers,
                "configured provider",
            )
        targets = route.get("connectors")
        for j, target in enumerate(targets if isinstance(targets, list) else []):
            _names(
                problems,
                ("routes", i, "connectors", j),
                str(target),
                instances,
                "connector instance",
            )


def _check_rule_ids(data: dict[str, Any], problems: _Problems) -> None:
    from acw_sync.rules import DEFAULT_RULES

    rule_ids = [str(r.get("id")) for r in data.get("rules") or [] if isinstance(r, dict)]
    for i, rule_id in enumerate(rule_ids):
        if rule_id in rule_ids[:i]:
            problems.add(
                ("rules", i, "id"), f"rule id {rule_id!r} is used twice (give each rule its own id)"
            )
    if _mapping(data, "followups").get("default_rules") is not False:
        rule_ids = list(dict.fromkeys([*(r["id"] for r in DEFAULT_RULES), *rule_ids]))
    for name, spec in _mapping(data, "connectors").items():
        if isinstance(spec, dict) and isinstance(spec.get("rules"), list):
            for j, rule in enumerate(spec["rules"]):
                where = ("connectors", str(name), "rules", j)
                _names(problems, where, str(rule), rule_ids, "rule")


def _check_analyzer(data: dict[str, Any], problems: _Problems) -> None:
    """The hook for the analyzer package: it owns the shape of the ``analyzer`` section."""
    if not isinstance(data.get("analyzer"), dict):
        return
    try:
        module = importlib.import_module("acw_sync.analyzer")
    except ImportError:
        return
    settings = getattr(module, "AnalyzerSettings", None)
    if isinstance(settings, type) and issubclass(settings, BaseModel):
        _plugin_errors(problems, ("analyzer",), settings, data["analyzer"])


_CHECKS = (_check_connectors, _check_providers, _check_routes, _check_rule_ids, _check_analyzer)
"""What only plugins and cross-references can tell; run on the raw data even when the
structure has errors, so one run reports everything."""


def read_config(file: Path) -> AppConfig:
    """Read, substitute, validate; ConfigError lists every problem with its line."""
    if not file.exists():
        raise ConfigError(
            f"{file}: config file not found (set ACW_CONFIG or pass the path of an existing file)",
        )
    text = file.read_text()
    try:
        node = yaml.compose(text, Loader=_Loader)
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"{file}{line}: not valid YAML: {what} (check the indentation and quoting there)"
        ) from None
    raw = {} if raw is None else raw
    problems = _Problems(file, _line_map(node), raw)
    _duplicates(node, problems)
    if not isinstance(raw, dict):
        problems.add((), "the top level must be a mapping of keys (providers:, connectors:, ...)")
        problems.raise_if_any()
    data = _substitute(raw, os.environ, (), problems)
    config = _structure(data, problems)
    for check in _CHECKS:
        check(data, problems)
    problems.raise_if_any()
    assert config is not None
    config.source = str(file)
    return config
