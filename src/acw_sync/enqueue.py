"""Dedupe claims and broker publishes of concurrent webhook requests, in batches.

Every request hands its parsed events to :meth:`Enqueuer.enqueue` and waits. One drain task per
event loop takes everything waiting and, on the event loop, claims all the delivery ids and
journals the claimed events in one Redis script (:class:`~acw_sync.claims.DeliveryClaims`),
publishes them in one broker batch (one ``process_events`` Celery message per up to 100 events,
see :mod:`acw_sync.publish`), answers every waiting request, then confirms the claims.
Under load the batches grow by themselves (everything that arrived during the previous flush goes
in the next), so the cost per webhook falls as the rate rises; an idle server flushes a single
request at once.

Nothing here blocks the loop: the claims use ``redis.asyncio``, and so does the publish when the
publisher offers :meth:`~acw_sync.publish.RedisPublisher.publish_async` (a Redis broker). Any
other publisher (``apply_async`` for RabbitMQ, a test's recorder) runs in a worker thread.

Invariant kept: a request learns "accepted" only after its events are on the broker. When the
publish fails, the batch's claims are released and its inbox entries dropped, and every request
of the batch gets the error (the server answers 503 and the platform retries).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import anyio
import structlog

from acw_sync.claims import DeliveryClaims
from acw_sync.model import CallEvent
from acw_sync.publish import PublishMany
from acw_sync.store import StateStore

__all__ = ["Enqueued", "Enqueuer", "PublishAsync"]

log = structlog.get_logger("acw_sync.server")

#: Most events one flush claims and publishes. Bounds the size of one LPUSH, the time the claim
#: script holds Redis, and the latency the first request of a large flush pays for the others.
MAX_BATCH = 512

PublishAsync = Callable[[Sequence[CallEvent], Sequence[bytes]], Awaitable[None]]
"""Publish events given with their JSON (``model_dump_json``, encoded), on the event loop."""


@dataclass
class Enqueued:
    """What became of one request's events."""

    accepted: list[CallEvent] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


@dataclass
class _Waiting:
    provider: str
    events: Sequence[CallEvent]
    future: asyncio.Future[Enqueued]


class Enqueuer:
    """Batches the claim + publish of concurrent requests (see the module docstring)."""

    def __init__(
        self,
        store: StateStore,
        publish_many: PublishMany,
        max_batch: int = MAX_BATCH,
        *,
        publish_async: PublishAsync | None = None,
    ) -> None:
        self.store = store
        self.publish_many = publish_many
        self.publish_async = publish_async
        self.max_batch = max_batch
        self._waiting: list[_Waiting] = []
        self._draining = False
        self._task: asyncio.Task[None] | None = None
        self._claims: DeliveryClaims | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def enqueue(self, provider: str, events: Sequence[CallEvent]) -> Enqueued:
        """Claim and publish ``events``; raises what the claim or the publish raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Enqueued] = loop.create_future()
        self._waiting.append(_Waiting(provider, events, future))
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())
        return await future

    def _claims_here(self) -> DeliveryClaims:
        # An asyncio Redis connection belongs to the loop it was opened on (the server has one
        # loop; tests open one per request).
        loop = asyncio.get_running_loop()
        if self._claims is None or self._loop is not loop:
            self._claims, self._loop = DeliveryClaims(self.store), loop
        return self._claims

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch: list[_Waiting] = []
                size = 0
                while self._waiting and (not batch or size < self.max_batch):
                    item = self._waiting.pop(0)
                    batch.append(item)
                    size += len(item.events)
                try:
                    outcomes, published = await self._flush(batch)
                except Exception as exc:
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(exc)
                    continue
                for item, outcome in zip(batch, outcomes, strict=True):
                    if not item.future.done():
                        item.future.set_result(outcome)
                try:
                    # After the answers: the events are on the queue whatever happens here.
                    await self._claims_here().confirm(published)
                except Exception as exc:
                    # The provisional claims expire; a redelivery until then is published
                    # again and absorbed by process_event.
                    log.warning("could not confirm the delivery claims", error=type(exc).__name__)
        finally:
            self._draining = False

    async def _flush(self, batch: list[_Waiting]) -> tuple[list[Enqueued], list[tuple[str, str]]]:
        """Claim, journal and publish ``batch``: each request's outcome, and the keys claimed."""
        claims = self._claims_here()
        keys: list[tuple[str, str]] = []
        journal: list[tuple[str, bytes]] = []
        for item in batch:
            for event in item.events:
                keys.append((item.provider, event.event_id))
                journal.append((event.event_id, event.model_dump_json().encode()))
        # Journal first: a broker message lost after the 202 is published again.
        claimed = iter(zip(await claims.claim_and_journal(keys, journal), journal, strict=True))
        outcomes: list[Enqueued] = []
        accepted: list[CallEvent] = []
        accepted_json: list[bytes] = []
        published: list[tuple[str, str]] = []
        for item in batch:
            outcome = Enqueued()
            for event in item.events:
                new, (_, event_json) = next(claimed)
                if new:
                    outcome.accepted.append(event)
                    accepted.append(event)
                    accepted_json.append(event_json)
                    published.append((item.provider, event.event_id))
                else:
                    outcome.duplicates.append(event.event_id)
            outcomes.append(outcome)
        if accepted:
            try:
                if self.publish_async is not None:
                    await self.publish_async(accepted, accepted_json)
                else:
                    await anyio.to_thread.run_sync(self.publish_many, accepted)
            except Exception:
                # Nothing is acknowledged unless it is on the queue: let the platforms retry.
                with contextlib.suppress(Exception):  # Redis itself is down: the claims expire
                    await claims.release(published, [e.event_id for e in accepted])
                raise
        return outcomes, published
