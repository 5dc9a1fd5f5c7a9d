"""Finding Contacts, Leads and Accounts by phone: SOQL over every stored format, in Composite.

Phone values are stored as entered, so each number is probed in every format it is commonly
stored in (:func:`acw_sync.phone.stored_formats`: 8 for a US number) on every phone field of
the object (4 on Contact), and each hit is re-checked by normalising the stored value. Many
numbers share one query (``Phone IN (...) OR MobilePhone IN (...)``, at most :data:`MAX_SOQL`
characters) and up to five queries share one Composite request, which Salesforce counts as one
API call (:mod:`.composite`). A burst of 200 US numbers is one request for Contact and Lead.

Rounds: the numbers an object must be searched for are known once the objects ranked above it
have answered (with ``all_matches=False`` a number matched by a Contact needs no Lead query).
Each round sends the queries known to be needed and fills the last request's free query slots
with the next objects' queries ahead of time (their rows are used only where needed).

A failed query (``httpStatusCode`` >= 300 in its subrequest) is handled on its own: a query
sent ahead of time is simply asked again when needed; a needed query refused as malformed or
too complicated is split in halves (one number at a time at worst), so one odd number cannot
hide the others' matches; any other failure raises its intent (retryable, quota,
permanent...). A failed query is never read as "no match", which would create a duplicate Lead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from acw_connector_salesforce.client import error_intent, soql_quote
from acw_connector_salesforce.composite import MAX_QUERIES, query_many
from acw_sync.model import CustomerRef
from acw_sync.phone import by_region, mask, matching_numbers, stored_formats

if TYPE_CHECKING:
    from acw_connector_salesforce.connector import SalesforceConnector

__all__ = ["MAX_SOQL", "PHONE_FIELDS", "find_by_phone"]

PHONE_FIELDS: dict[str, tuple[str, ...]] = {
    "Contact": ("Phone", "MobilePhone", "HomePhone", "OtherPhone"),
    "Lead": ("Phone", "MobilePhone"),
    "Account": ("Phone",),
}

#: Longest SOQL statement one look-up query may be, in characters. Salesforce allows 100,000
#: (App Limits Cheatsheet, "SOQL and SOSL Limits for Search Queries"); staying well under
#: leaves room for the server's own expansion of long statements (QUERY_TOO_COMPLICATED). At
#: this size 75 US numbers fit one Contact query and 150 one Lead query.
MAX_SOQL = 40_000

#: Codes of a query refused for what it says (one odd value, or its length): worth splitting.
SPLIT_CODES = frozenset({"MALFORMED_QUERY", "QUERY_TOO_COMPLICATED"})


@dataclass(frozen=True)
class _Query:
    sobject: str
    phones: tuple[str, ...]
    soql: str
    ahead: bool = False
    """Sent before we knew it was needed (a free slot in the request)."""


class _Search:
    """One ``find_by_phone`` call's state: who has been answered, by which object."""

    def __init__(self, conn: SalesforceConnector, phones: list[str], all_matches: bool) -> None:
        self.conn = conn
        self.phones = phones
        self.all_matches = all_matches
        self.objects = [str(o) for o in conn.settings.object_priority]
        self.quoted = {p: ", ".join(soql_quote(f) for f in stored_formats(p)) for p in phones}
        # sobject -> number -> its matches (best first); a number is absent until answered.
        self.answers: dict[str, dict[str, list[CustomerRef]]] = {o: {} for o in self.objects}
        self.leads = {r.id for r in conn._leads.values()}

    def needed(self, sobject: str, phone: str) -> bool | None:
        """Must ``sobject`` be searched for ``phone``? None: not known yet."""
        if self.all_matches:
            return True
        for higher in self.objects[: self.objects.index(sobject)]:
            found = self.answers[higher].get(phone)
            if found is None:
                return None
            if found:
                return False
        return True

    def queries(self, sobject: str, phones: Sequence[str], *, ahead: bool = False) -> list[_Query]:
        """``phones`` in as few queries of ``sobject`` as :data:`MAX_SOQL` allows."""
        fields = PHONE_FIELDS[sobject]
        chunks: list[list[str]] = []
        size = MAX_SOQL  # forces a first chunk
        fixed = len(self._soql(sobject, [])) + 50
        for phone in phones:
            cost = (len(self.quoted[phone]) + 2) * len(fields)
            if size + cost > MAX_SOQL - fixed:
                chunks.append([])
                size = 0
            chunks[-1].append(phone)
            size += cost
        return [_Query(sobject, tuple(c), self._soql(sobject, c), ahead) for c in chunks]

    def _soql(self, sobject: str, phones: Sequence[str]) -> str:
        fields = PHONE_FIELDS[sobject]
        forms = ", ".join(self.quoted[p] for p in phones)
        where = " OR ".join(f"{f} IN ({forms})" for f in fields)
        if sobject == "Lead":
            where = f"IsConverted = false AND ({where})"
        select = ["Id", "Name", *fields, "OwnerId"]
        if sobject == "Contact":
            select.append("AccountId")
        limit = max(1, min(2000, self.conn.settings.max_candidates * len(phones)))
        return (
            f"SELECT {', '.join(select)} FROM {sobject} WHERE {where} "
            f"ORDER BY LastModifiedDate DESC, Id ASC LIMIT {limit}"
        )

    def next_round(self, retries: list[_Query]) -> list[_Query]:
        """The queries known to be needed, then queries ahead of time in the free slots."""
        retrying = {(q.sobject, p) for q in retries for p in q.phones}
        due = list(retries)
        for sobject in self.objects:
            phones = [
                p
                for p in self.phones
                if p not in self.answers[sobject]
                and (sobject, p) not in retrying
                and self.needed(sobject, p) is True
            ]
            due += self.queries(sobject, phones)
        if not due:
            return []
        free = -len(due) % MAX_QUERIES
        for sobject in self.objects:
            phones = [
                p
                for p in self.phones
                if p not in self.answers[sobject] and self.needed(sobject, p) is None
            ]
            if not phones:
                continue
            ahead = self.queries(sobject, phones, ahead=True)
            if len(ahead) > free:
                break
            due += ahead
            free -= len(ahead)
        return due

    def record(self, query: _Query, rows: list[dict[str, Any]]) -> None:
        settings = self.conn.settings
        fields = PHONE_FIELDS[query.sobject]
        answers = self.answers[query.sobject]
        for phone in query.phones:
            answers[phone] = []
        groups = by_region(query.phones, settings.default_region)
        for row in rows:  # most recently modified first
            stored_as: dict[str, str] = {}  # number -> the first field's stored form
            for f in fields:
                for hit in matching_numbers(row.get(f), groups):
                    stored_as.setdefault(hit, row[f])
            for phone, stored in stored_as.items():
                if len(answers[phone]) >= settings.max_candidates:
                    continue
                record_id = str(row["Id"])
                answers[phone].append(
                    CustomerRef(
                        object_type=query.sobject,
                        id=record_id,
                        name=row.get("Name"),
                        phone=stored,
                        owner_id=row.get("OwnerId"),
                        account_id=row.get("AccountId"),
                        url=self.conn._url(record_id),
                        created_by_acw=record_id in self.leads,
                    )
                )

    def result(self) -> dict[str, list[CustomerRef]]:
        out: dict[str, list[CustomerRef]] = {p: [] for p in self.phones}
        for phone in self.phones:
            for sobject in self.objects:
                found = self.answers[sobject].get(phone) or []
                out[phone] += found
                if found and not self.all_matches:
                    break
        return out


def find_by_phone(
    conn: SalesforceConnector, phones: Sequence[str], *, all_matches: bool
) -> dict[str, list[CustomerRef]]:
    """Every number's matches, best first (object priority, then most recently modified).

    ``all_matches=False``: only the first object type that matches a number is listed for it.
    """
    search = _Search(conn, list(dict.fromkeys(phones)), all_matches)
    retries: list[_Query] = []
    while queries := search.next_round(retries):
        retries = []
        answers = query_many(conn.client, [q.soql for q in queries], "finding customers by phone")
        for query, answer in zip(queries, answers, strict=True):
            if answer.failure is None:
                search.record(query, answer.rows)
            elif query.ahead:
                continue  # asked again if it turns out to be needed
            elif answer.failure.code in SPLIT_CODES and len(query.phones) > 1:
                half = len(query.phones) // 2
                for part in (query.phones[:half], query.phones[half:]):
                    retries += search.queries(query.sobject, part)
            else:
                numbers = ", ".join(mask(p) for p in query.phones[:3])
                more = "..." if len(query.phones) > 3 else ""
                raise error_intent(
                    answer.failure,
                    config=conn.settings,
                    what=f"finding {query.sobject}s by phone ({numbers}{more})",
                )
    return search.result()
