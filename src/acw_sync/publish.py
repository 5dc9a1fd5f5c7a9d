"""Putting the ingest's events on the broker as Celery task messages, many at a time.

A batch of events goes out as few messages: up to :data:`MAX_EVENTS_PER_MESSAGE` events per
``process_events`` message (a lone event as the ``process_event`` message it always was). The
worker's cost per message (kombu's ``BRPOP``, its unacked bookkeeping and late ack, the pool's
pipes: about 4-5 ms of worker CPU on this class of machine) is then paid once per batch instead
of once per event.

Celery's ``apply_async`` costs about 316 µs of CPU per message on this class of machine
(``send_task``, ``amqp.as_task_v2``, kombu's producer): at a few thousand webhooks per second
that is the ingest server's whole budget. Two publishers share one signature,
``publish_many(events)``, which returns once every event is on the broker or raises:

* :class:`RedisPublisher` (broker ``redis://``, ``rediss://`` or ``unix://``): builds the
  messages kombu's Redis transport would build (the envelope below, body base64) and pushes the
  whole batch with one ``LPUSH``. The format is pinned by a test against ``apply_async``'s, and
  a real Celery worker consumes it in the end-to-end tests. The ingest server calls its
  :meth:`~RedisPublisher.publish_async` (``redis.asyncio``, on the event loop, with the event
  JSON the server already has).
* :func:`celery_publisher` (any other broker: RabbitMQ, ``sentinel://``): ``apply_async`` per
  message on one producer, with Celery's publish retry policy.

Must not touch: the tasks' behaviour (``acw_sync.tasks``) or the state store.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis
import redis.asyncio as aredis

from acw_sync.model import CallEvent

__all__ = [
    "MAX_EVENTS_PER_MESSAGE",
    "PublishMany",
    "RedisPublisher",
    "celery_publisher",
    "chunks",
    "publisher_for",
]

PublishMany = Callable[[Sequence[CallEvent]], None]

TASK_NAME = "acw.process_event"
BATCH_TASK_NAME = "acw.process_events"
#: Most events one ``process_events`` message carries. Bounds the message (a few hundred KiB at
#: most), the work a killed worker's redelivery repeats, and how long one pool process holds
#: the batch while other processes wait for work; larger batches are split.
MAX_EVENTS_PER_MESSAGE = 100
_CLIENT_SETTINGS: dict[str, Any] = {
    "socket_timeout": 5,
    "socket_connect_timeout": 3,
    "health_check_interval": 15,
}
_BODY_TAIL = b'], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'


def chunks(count: int, size: int = MAX_EVENTS_PER_MESSAGE) -> list[range]:
    """The index ranges of the messages that carry ``count`` events (at most ``size`` each)."""
    return [range(i, min(i + size, count)) for i in range(0, count, size)]


def _uuid4() -> str:
    """``str(uuid.uuid4())`` (random, version 4, RFC 4122 variant) for a third of its cost."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _identity(event: CallEvent) -> str:
    """What Celery's repr of an event starts with: its identity fields."""
    return (
        f"{{'event_id': {event.event_id!r}, 'provider': {event.provider!r}, "
        f"'call_id': {event.call_id!r}, ...}}"
    )


class RedisPublisher:
    """Celery task messages for kombu's Redis transport, one ``LPUSH`` per batch."""

    def __init__(self, url: str, queue: str = "acw") -> None:
        self.url = url
        self.queue = queue
        self.redis = redis.Redis.from_url(url, **_CLIENT_SETTINGS)
        self._async: aredis.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._origin_json = json.dumps(f"gen{os.getpid()}@{socket.gethostname()}")
        self._queue_json = json.dumps(queue)
        # kombu derives the reply-to from the app's oid: any stable uuid serves (no results).
        self._reply_to = str(uuid.uuid4())

    def message(self, event_json: str | bytes, event: CallEvent) -> bytes:
        """The JSON kombu's Redis transport stores for ``process_event.apply_async([event])``.

        Assembled from pre-encoded pieces (the event as pydantic serialised it, ids that need no
        escaping): encoding the envelope as a dict costs several times more per message.
        """
        if isinstance(event_json, str):
            event_json = event_json.encode()
        return self._envelope(TASK_NAME, b"[[" + event_json + _BODY_TAIL, _identity(event))

    def batch_message(
        self, event_jsons: Sequence[str | bytes], events: Sequence[CallEvent]
    ) -> bytes:
        """The JSON stored for ``process_events.apply_async([[event, ...]])``."""
        jsons = [j.encode() if isinstance(j, str) else j for j in event_jsons]
        body = b"[[[" + b", ".join(jsons) + b"]" + _BODY_TAIL
        # Celery's saferepr of the whole list is capped at 1 KiB; the first event and the
        # count say as much to someone reading a monitor.
        args_repr = f"[{_identity(events[0])}, ... ({len(events)} events)]"
        return self._envelope(BATCH_TASK_NAME, body, args_repr)

    def messages(
        self, event_jsons: Sequence[str | bytes], events: Sequence[CallEvent]
    ) -> list[bytes]:
        """The messages that carry ``events`` (:func:`chunks`), in order."""
        out = []
        for part in chunks(len(events)):
            if len(part) == 1:
                out.append(self.message(event_jsons[part[0]], events[part[0]]))
            else:
                out.append(
                    self.batch_message(
                        event_jsons[part.start : part.stop], events[part.start : part.stop]
                    )
                )
        return out

    def _envelope(self, task: str, body: bytes, args_repr: str) -> bytes:
        task_id = _uuid4()
        return "".join(
            (
                '{"body": "',
                base64.b64encode(body).decode(),
                '", "content-encoding": "utf-8", "content-type": "application/json", ',
                '"headers": {"lang": "py", "task": "',
                task,
                '", "id": "',
                task_id,
                '", "shadow": null, "eta": null, "expires": null, "group": null, ',
                '"group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "',
                task_id,
                '", "parent_id": null, "argsrepr": ',
                # Celery puts repr(args) here, for monitoring and for the worker's "received"
                # log line (acw_sync.logs reads the call's identity from it).
                json.dumps(f"[{args_repr}]"),
                ', "kwargsrepr": "{}", "origin": ',
                self._origin_json,
                ', "ignore_result": true, "replaced_task_nesting": 0, ',
                '"stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "',
                task_id,
                '", "reply_to": "',
                self._reply_to,
                '", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": ',
                self._queue_json,
                '}, "priority": 0, "body_encoding": "base64", "delivery_tag": "',
                _uuid4(),
                '"}}',
            )
        ).encode()

    def __call__(self, events: Sequence[CallEvent]) -> None:
        if not events:
            return
        messages = self.messages([e.model_dump_json() for e in events], events)
        # One LPUSH keeps the batch's order for the consumer's BRPOP (first in, first out).
        self.redis.lpush(self.queue, *messages)

    async def publish_async(self, events: Sequence[CallEvent], jsons: Sequence[bytes]) -> None:
        """:meth:`__call__` on the running event loop; ``jsons`` are the events'
        ``model_dump_json()``, encoded, one per event."""
        if not events:
            return
        if len(jsons) != len(events):
            raise ValueError("one JSON per event")
        messages = self.messages(jsons, events)
        loop = asyncio.get_running_loop()
        if self._async is None or self._loop is not loop:  # a connection belongs to its loop
            self._async, self._loop = aredis.Redis.from_url(self.url, **_CLIENT_SETTINGS), loop
        await self._async.lpush(self.queue, *messages)

    def close(self) -> None:
        self.redis.close()


def celery_publisher() -> PublishMany:
    """``apply_async`` per message on one producer: for brokers other than Redis."""
    from acw_sync.tasks import app, process_event, process_events

    def publish_many(events: Sequence[CallEvent]) -> None:
        with app.producer_or_acquire() as producer:
            for part in chunks(len(events)):
                dumped = [events[i].model_dump(mode="json") for i in part]
                if len(dumped) == 1:
                    process_event.apply_async(args=dumped, retry=True, producer=producer)
                else:
                    process_events.apply_async(args=[dumped], retry=True, producer=producer)

    return publish_many


def publisher_for(url: str, queue: str = "acw") -> PublishMany:
    """The fastest publisher that is exact for the broker at ``url``."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisPublisher(url, queue)
    return celery_publisher()
