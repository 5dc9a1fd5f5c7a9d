"""Dedupe claims and broker publishes of concurrent webhook requests, in batches.

Every request hands its parsed events to :meth:`Enqueuer.enqueue` and waits. One drain task per
event loop takes everything waiting, and in a worker thread (so the loop never blocks on
Redis or the broker) claims all the delivery ids in one Redis pipeline, publishes the claimed
events in one broker batch, and answers every waiting request. Under load the batches grow by
themselves (everything that arrived during the previous flush goes in the next), so the cost per
webhook falls as the rate rises; an idle server flushes a single request at once.

Invariant kept: a request learns "accepted" only after its events are on the broker. When the
publish fails, the batch's claims are released and every request of the batch gets the error
(the server answers 503 and the platform retries).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
import structlog

from acw_sync.model import CallEvent
from acw_sync.publish import PublishMany
from acw_sync.store import StateStore

__all__ = ["Enqueued", "Enqueuer"]

log = structlog.get_logger("acw_sync.server")

#: Most events one flush claims and publishes. Bounds the size of one LPUSH and the latency
#: the first request of a large flush pays for the others.
MAX_BATCH = 512


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

    def __init__(self, store: StateStore, publish_many: PublishMany, max_batch: int = MAX_BATCH):
        self.store = store
        self.publish_many = publish_many
        self.max_batch = max_batch
        self._waiting: list[_Waiting] = []
        self._draining = False
        self._task: asyncio.Task[None] | None = None

    async def enqueue(self, provider: str, events: Sequence[CallEvent]) -> Enqueued:
        """Claim and publish ``events``; raises what the claim or the publish raised."""
        future: asyncio.Future[Enqueued] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(provider, events, future))
        if not self._draining:
            self._draining = True
            self._task = asyncio.get_running_loop().create_task(self._drain())
        return await future

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
                    outcomes = await anyio.to_thread.run_sync(self._flush, batch)
                except Exception as exc:
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(exc)
                else:
                    for item, outcome in zip(batch, outcomes, strict=True):
                        if not item.future.done():
                            item.future.set_result(outcome)
        finally:
            self._draining = False

    def _flush(self, batch: list[_Waiting]) -> list[Enqueued]:
        keys = [(item.provider, e.event_id) for item in batch for e in item.events]
        claimed = iter(self.store.claim_many(keys))
        outcomes: list[Enqueued] = []
        accepted: list[CallEvent] = []
        released: list[tuple[str, str]] = []
        for item in batch:
            outcome = Enqueued()
            for event in item.events:
                if next(claimed):
                    outcome.accepted.append(event)
                    accepted.append(event)
                    released.append((item.provider, event.event_id))
                else:
                    outcome.duplicates.append(event.event_id)
            outcomes.append(outcome)
        try:
            # Journal first: a broker message lost after the 202 is published again.
            self.store.inbox_add(accepted)
            self.publish_many(accepted)
        except Exception:
            # Nothing is acknowledged unless it is on the queue: let the platforms retry.
            with contextlib.suppress(Exception):  # Redis itself is down: the claims expire
                self.store.release_many(released)
                for event in accepted:  # refused: the platform retries, not our inbox
                    self.store.inbox_done(event.event_id)
            raise
        by_provider: dict[str, list[str]] = {}
        for provider, delivery_id in released:
            by_provider.setdefault(provider, []).append(delivery_id)
        try:
            for provider, ids in by_provider.items():
                self.store.confirm(provider, *ids)
        except Exception as exc:
            # The events are on the queue: accept. The provisional claims expire; a redelivery
            # until then is published again and absorbed by process_event.
            log.warning("could not confirm the delivery claims", error=type(exc).__name__)
        return outcomes
