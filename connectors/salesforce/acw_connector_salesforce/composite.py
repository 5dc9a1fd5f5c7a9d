"""Many SOQL queries as one API call, through the REST **Composite** resource.

``POST /services/data/vXX.X/composite`` with ``{"allOrNone": false, "compositeRequest": [{"method":
"GET", "url": "/services/data/vXX.X/query/?q=...", "referenceId": "q0"}, ...]}`` answers
``{"compositeResponse": [{"body", "httpHeaders", "httpStatusCode", "referenceId"}, ...]}``: each
subrequest with its own status and body, as if it had been sent alone.

The documented limits (REST API Developer Guide, "Send Multiple Requests Using Composite",
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm):

* "You can have up to 25 subrequests in a single call. Up to 5 of these subrequests can be
  sObject Collections or query operations, including Query and QueryAll requests."
  (:data:`MAX_SUBREQUESTS`, :data:`MAX_QUERIES`);
* "The entire series of requests counts as a single call toward your API limits."

A query in a subrequest travels in the JSON body, not in the request line, so the 16,384-byte
URI limit of a plain ``GET query/?q=`` does not bind it: Salesforce's own advice for SOQL too
long for the URI is to send it as a Composite subrequest (Knowledge article 000386264,
https://help.salesforce.com/s/articleView?id=000386264&type=1). The SOQL statement limit,
100,000 characters, still applies (App Limits Cheatsheet, "SOQL and SOSL Limits for Search
Queries").

Over the limits, Salesforce refuses the whole request in the composite shape, e.g.
``{"compositeResponse": [{"body": [{"errorCode": "LIMIT_EXCEEDED", "message": "The request can't
contain more than 25 operations."}], "httpHeaders": {}, "httpStatusCode": 400, "referenceId":
null}]}`` (seen in production, guardian/support-service-lambdas#766); whether the top-level status
is then 200 or 400 is not documented, so both are read (:func:`.client.failure_of` unwraps it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from simple_salesforce.api import Salesforce

from acw_connector_salesforce.client import (
    SalesforceClient,
    SalesforceFailure,
    error_intent,
    failure_of,
)
from acw_sync.errors import PermanentError

__all__ = ["MAX_QUERIES", "MAX_SUBREQUESTS", "QueryAnswer", "query_many"]

#: Subrequests per composite request.
MAX_SUBREQUESTS = 25
#: Query, QueryAll and sObject Collections subrequests per composite request.
MAX_QUERIES = 5


@dataclass(frozen=True)
class QueryAnswer:
    """One query's outcome: its rows, or Salesforce's error for that subrequest alone."""

    rows: list[dict[str, Any]]
    failure: SalesforceFailure | None = None


def query_many(client: SalesforceClient, soqls: Sequence[str], what: str) -> list[QueryAnswer]:
    """Run ``soqls`` in composite requests of :data:`MAX_QUERIES`: one answer per query, in order.

    A subrequest's error is that query's :attr:`QueryAnswer.failure`; the others still count.
    A failure of the whole request (quota, session, outage) raises its intent. A result longer
    than one batch is completed with ``query_more`` (plain GETs behind ``nextRecordsUrl``).
    """
    answers: list[QueryAnswer] = []
    version = client.config.api_version
    for start in range(0, len(soqls), MAX_QUERIES):
        group = soqls[start : start + MAX_QUERIES]
        subrequests = [
            {
                "method": "GET",
                "url": f"/services/data/v{version}/query/?{urlencode({'q': soql})}",
                "referenceId": f"q{n}",
            }
            for n, soql in enumerate(group)
        ]
        body = {"allOrNone": False, "compositeRequest": subrequests}
        reply = client.rest("POST", "composite", what, body)
        for item in _items(reply, len(group), what, client):
            status = int(item.get("httpStatusCode") or 0)
            content = item.get("body")
            if status >= 300 or not isinstance(content, Mapping):
                answers.append(QueryAnswer([], failure_of(status, content)))
                continue
            answers.append(QueryAnswer(_all_rows(client, content, what)))
    return answers


def _items(reply: Any, count: int, what: str, client: SalesforceClient) -> list[dict[str, Any]]:
    """The subrequests' answers in request order (matched on ``referenceId``)."""
    items = reply.get("compositeResponse") if isinstance(reply, Mapping) else None
    if not isinstance(items, list):
        raise PermanentError(f"unexpected composite answer while {what}")
    by_ref = {str(i.get("referenceId")): dict(i) for i in items if isinstance(i, Mapping)}
    if len(items) != count or any(f"q{n}" not in by_ref for n in range(count)):
        # Refused as a whole but answered 200: one item without a reference id.
        refused = failure_of(400, reply)
        raise error_intent(refused, config=client.config, what=what)
    return [by_ref[f"q{n}"] for n in range(count)]


def _all_rows(client: SalesforceClient, page: Mapping[str, Any], what: str) -> list[dict[str, Any]]:
    rows = [dict(r) for r in page.get("records") or []]
    while not page.get("done", True) and page.get("nextRecordsUrl"):
        url = str(page["nextRecordsUrl"])

        def more(sf: Salesforce, url: str = url) -> Mapping[str, Any]:
            return dict(sf.query_more(url, identifier_is_url=True))

        page = client.call(what, more)
        rows += [dict(r) for r in page.get("records") or []]
    return rows
