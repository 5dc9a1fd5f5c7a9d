"""Putting ``process_event`` messages on the broker, many at a time.

Celery's ``apply_async`` costs about 316 µs of CPU per message on this class of machine
(``send_task``, ``amqp.as_task_v2``, kombu's producer): at a few thousand webhooks per second
that is the ingest server's whole budget. Two publishers share one signature,
``publish_many(events)``, which returns once every event is on the broker or raises:

* :class:`RedisPublisher` (broker ``redis://``, ``rediss://`` or ``unix://``): builds the
  message kombu's Redis transport would build (the envelope below, body base64) and pushes the
  whole batch with one ``LPUSH``. The format is pinned by a test against ``apply_async``'s, and
  a real Celery worker consumes it in the end-to-end tests. The ingest server calls its
  :meth:`~RedisPublisher.publish_async` (``redis.asyncio``, on the event loop, with the event
  JSON the server already has).
* :func:`celery_publisher` (any other broker: RabbitMQ, ``sentinel://``): ``apply_async`` per
  event on one producer, with Celery's publish retry policy.

Must not touch: the task's behaviour (``acw_sync.tasks``) or the state store.
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

__all__ = ["PublishMany", "RedisPublisher", "celery_publisher", "publisher_for"]

PublishMany = Callable[[Sequence[CallEvent]], None]

TASK_NAME = "acw.process_event"
_CLIENT_SETTINGS: dict[str, Any] = {
    "socket_timeout": 5,
    "socket_connect_timeout": 3,
    "health_check_interval": 15,
}
_BODY_TAIL = b'], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'


def _uuid4() -> str:
    """``str(uuid.uuid4())`` (random, version 4, RFC 4122 variant) for a third of its cost."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


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
        task_id = _uuid4()
        if isinstance(event_json, str):
            event_json = event_json.encode()
        body = b"[[" + event_json + _BODY_TAIL
        # Celery puts repr(args) in argsrepr, for monitoring and for the worker's "received" log
        # line (acw_sync.logs reads the call's identity from it): its identity fields suffice.
        argsrepr = json.dumps(
            f"[{{'event_id': {event.event_id!r}, 'provider': {event.provider!r}, "
            f"'call_id': {event.call_id!r}, ...}}]"
        )
        return "".join(
            (
                '{"body": "',
                base64.b64encode(body).decode(),
                '", "content-encoding": "utf-8", "content-type": "application/json", ',
                '"headers": {"lang": "py", "task": "',
                TASK_NAME,
                '", "id": "',
                task_id,
                '", "shadow": null, "eta": null, "expires": null, "group": null, ',
                '"group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "',
                task_id,
                '", "parent_id": null, "argsrepr": ',
                argsrepr,
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
        messages = [self.message(e.model_dump_json(), e) for e in events]
        # One LPUSH keeps the batch's order for the consumer's BRPOP (first in, first out).
        self.redis.lpush(self.queue, *messages)

    async def publish_async(self, events: Sequence[CallEvent], jsons: Sequence[bytes]) -> None:
        """:meth:`__call__` on the running event loop; ``jsons`` are the events'
        ``model_dump_json()``, encoded, one per event."""
        if not events:
            return
        messages = [self.message(j, e) for e, j in zip(events, jsons, strict=True)]
        loop = asyncio.get_running_loop()
        if self._async is None or self._loop is not loop:  # a connection belongs to its loop
            self._async, self._loop = aredis.Redis.from_url(self.url, **_CLIENT_SETTINGS), loop
        await self._async.lpush(self.queue, *messages)

    def close(self) -> None:
        self.redis.close()


def celery_publisher() -> PublishMany:
    """``apply_async`` per event on one producer: for brokers other than Redis."""
    from acw_sync.tasks import app, process_event

    def publish_many(events: Sequence[CallEvent]) -> None:
        with app.producer_or_acquire() as producer:
            for event in events:
                process_event.apply_async(
                    args=[event.model_dump(mode="json")], retry=True, producer=producer
                )

    return publish_many


def publisher_for(url: str, queue: str = "acw") -> PublishMany:
    """The fastest publisher that is exact for the broker at ``url``."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisPublisher(url, queue)
    return celery_publisher()
