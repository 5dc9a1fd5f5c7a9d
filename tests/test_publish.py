"""The batch publisher's wire format, the ingest enqueuer's batching and its claims, on a real Redis.

That a real Celery worker consumes what :class:`RedisPublisher` pushes is shown end to end
(``tests/test_end_to_end.py``: the server publishes through it); here its message is compared
field by field with the one ``apply_async`` stores.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator, Sequence
from typing import Any

import kombu
import pytest
import redis

from acw_sync.enqueue import Enqueuer
from acw_sync.model import CallEvent
from acw_sync.publish import MAX_EVENTS_PER_MESSAGE, RedisPublisher, publisher_for
from acw_sync.store import StateStore

VOLATILE = {"id", "root_id", "correlation_id", "delivery_tag", "reply_to", "origin", "argsrepr"}


def _event(n: int, call: str = "c1") -> CallEvent:
    return CallEvent.model_validate(
        {
            "event_id": f"ev-{n}",
            "provider": "generic",
            "call_id": call,
            "type": "ended",
            "occurred_at": "2026-01-01T10:00:00Z",
        }
    )


@pytest.fixture
def celery_app(redis_url: str) -> Iterator[Any]:
    """The Celery app publishing to the test Redis; its connections closed afterwards."""
    from acw_sync.tasks import app, configure_broker

    configure_broker(redis_url)
    yield app
    kombu.pools.reset()  # closes the connections; the next user gets fresh pools
    app._pool = None
    app.amqp._producer_pool = None


def _mask(message: dict[str, Any]) -> dict[str, Any]:
    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ("*" if k in VOLATILE else walk(v)) for k, v in value.items()}
        return value

    masked = walk(message)
    masked["body"] = json.loads(base64.b64decode(message["body"]))
    return masked


def test_redis_message_is_what_apply_async_stores(
    redis_client: redis.Redis, redis_url: str, celery_app: Any
) -> None:
    from acw_sync.tasks import process_event

    event = _event(1).model_dump(mode="json")
    process_event.apply_async(args=[event], retry=True)
    [celery_raw] = redis_client.lrange("acw", 0, -1)
    redis_client.delete("acw")
    publisher = RedisPublisher(redis_url)
    publisher([_event(1)])
    [ours_raw] = redis_client.lrange("acw", 0, -1)
    publisher.close()
    celery, ours = json.loads(celery_raw), json.loads(ours_raw)
    assert _mask(ours) == _mask(celery)
    assert (
        ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"]
    )


def _bodies(raw: list[str]) -> list[tuple[str, list[str]]]:
    """(task, event ids) of each message, in the order a worker's BRPOP takes them."""
    out = []
    for message in reversed(raw):
        decoded = json.loads(message)
        [arg] = json.loads(base64.b64decode(decoded["body"]))[0]
        events = arg if isinstance(arg, list) else [arg]
        out.append((decoded["headers"]["task"], [e["event_id"] for e in events]))
    return out


def test_a_batch_is_one_message_in_order(redis_client: redis.Redis, redis_url: str) -> None:
    publisher = RedisPublisher(redis_url)
    publisher([_event(n) for n in range(5)])
    publisher.close()
    assert _bodies(redis_client.lrange("acw", 0, -1)) == [
        ("acw.process_events", [f"ev-{n}" for n in range(5)])
    ]


def test_large_batches_are_split_and_a_lone_event_stays_process_event(
    redis_client: redis.Redis, redis_url: str
) -> None:
    publisher = RedisPublisher(redis_url)
    publisher([_event(n) for n in range(2 * MAX_EVENTS_PER_MESSAGE + 1)])
    messages = _bodies(redis_client.lrange("acw", 0, -1))
    redis_client.delete("acw")
    publisher([_event(7)])
    [alone] = _bodies(redis_client.lrange("acw", 0, -1))
    publisher.close()
    assert [(task, len(ids)) for task, ids in messages] == [
        ("acw.process_events", MAX_EVENTS_PER_MESSAGE),
        ("acw.process_events", MAX_EVENTS_PER_MESSAGE),
        ("acw.process_event", 1),
    ]
    assert [i for _, ids in messages for i in ids] == [
        f"ev-{n}" for n in range(2 * MAX_EVENTS_PER_MESSAGE + 1)
    ]
    assert alone == ("acw.process_event", ["ev-7"])


def test_batch_message_is_what_apply_async_stores(
    redis_client: redis.Redis, redis_url: str, celery_app: Any
) -> None:
    from acw_sync.tasks import process_events

    events = [_event(1), _event(2, call="c2"), _event(3)]
    process_events.apply_async(args=[[e.model_dump(mode="json") for e in events]], retry=True)
    [celery_raw] = redis_client.lrange("acw", 0, -1)
    redis_client.delete("acw")
    publisher = RedisPublisher(redis_url)
    publisher(events)
    [ours_raw] = redis_client.lrange("acw", 0, -1)
    publisher.close()
    celery, ours = json.loads(celery_raw), json.loads(ours_raw)
    assert _mask(ours) == _mask(celery)
    assert (
        ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"]
    )
    assert "'event_id': 'ev-1'" in ours["headers"]["argsrepr"]
    assert "(3 events)" in ours["headers"]["argsrepr"]


def test_celery_publisher_sends_the_same_messages(
    redis_client: redis.Redis, redis_url: str, celery_app: Any
) -> None:
    """The ``apply_async`` path (RabbitMQ, Sentinel) splits a batch as the fast path does."""
    from acw_sync.publish import celery_publisher

    events = [_event(n) for n in range(MAX_EVENTS_PER_MESSAGE + 1)]
    celery_publisher()(events)
    celery = redis_client.lrange("acw", 0, -1)
    redis_client.delete("acw")
    publisher = RedisPublisher(redis_url)
    publisher(events)
    ours = redis_client.lrange("acw", 0, -1)
    publisher.close()
    assert _bodies(celery) == _bodies(ours)
    assert [_mask(json.loads(m)) for m in celery] == [_mask(json.loads(m)) for m in ours]


def test_non_redis_brokers_use_celery() -> None:
    assert not isinstance(publisher_for("amqp://guest:guest@127.0.0.1:5672//"), RedisPublisher)


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.down = False

    def __call__(self, events: Sequence[CallEvent]) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        self.batches.append([e.event_id for e in events])


def test_concurrent_requests_share_one_claim_and_publish(store: StateStore) -> None:
    recorder = Recorder()
    enqueuer = Enqueuer(store, recorder)

    async def run() -> list[Any]:
        first = asyncio.ensure_future(enqueuer.enqueue("generic", [_event(0)]))
        await asyncio.sleep(0)  # the first flush starts alone; the rest wait behind it
        rest = [enqueuer.enqueue("generic", [_event(n)]) for n in (1, 2, 2, 3)]
        return [await first, *await asyncio.gather(*rest)]

    outcomes = asyncio.run(run())
    assert recorder.batches == [["ev-0"], ["ev-1", "ev-2", "ev-3"]]
    assert [[e.event_id for e in o.accepted] for o in outcomes] == [
        ["ev-0"], ["ev-1"], ["ev-2"], [], ["ev-3"],
    ]  # fmt: skip
    assert outcomes[3].duplicates == ["ev-2"]


def test_failed_publish_releases_the_claims_of_the_batch(store: StateStore) -> None:
    recorder = Recorder()
    recorder.down = True
    enqueuer = Enqueuer(store, recorder)
    with pytest.raises(ConnectionError):
        asyncio.run(enqueuer.enqueue("generic", [_event(1), _event(2)]))
    recorder.down = False
    done = asyncio.run(enqueuer.enqueue("generic", [_event(1), _event(2)]))
    assert [e.event_id for e in done.accepted] == ["ev-1", "ev-2"]


def test_a_record_is_saved_when_redis_forgot_the_script(store: StateStore) -> None:
    from acw_sync.merge import merge_events

    added, events = store.add_event_and_events(_event(1))
    assert added and [e.event_id for e in events] == ["ev-1"]
    assert store.add_event_and_events(_event(1))[0] is False
    store._save_record.sha = "0" * 40  # as if Redis restarted without its scripts
    store.save_record(merge_events(events))
    assert store.record("generic:c1") is not None


def test_the_args_repr_names_the_call_for_the_worker_logs(redis_url: str) -> None:
    publisher = RedisPublisher(redis_url)
    message = json.loads(publisher.message(_event(1).model_dump_json(), _event(1)))
    publisher.close()
    assert "'provider': 'generic'" in message["headers"]["argsrepr"]
    assert "'call_id': 'c1'" in message["headers"]["argsrepr"]
    assert "'event_id': 'ev-1'" in message["headers"]["argsrepr"]


def test_delivery_claims_agree_with_the_store(store: StateStore) -> None:
    """The ingest's batch script and the store's methods read and write the same claims."""
    from acw_sync.claims import DeliveryClaims

    events = [_event(n) for n in range(3)]
    keys = [("generic", e.event_id) for e in events]
    journal = [(e.event_id, e.model_dump_json()) for e in events]

    async def claim(pairs: list[tuple[str, str]], rows: list[tuple[str, str]]) -> list[bool]:
        claims = DeliveryClaims(store)
        try:
            return await claims.claim_and_journal(pairs, rows)
        finally:
            await claims.close()

    async def act(name: str, pairs: list[tuple[str, str]]) -> None:
        claims = DeliveryClaims(store)
        try:
            if name == "confirm":
                await claims.confirm(pairs)
            else:
                await claims.release(pairs, [d for _, d in pairs])
        finally:
            await claims.close()

    # A key listed twice is claimed once; the claimed events are journalled as inbox_add does.
    assert asyncio.run(claim([*keys, keys[0]], [*journal, journal[0]])) == [True, True, True, False]
    assert sorted(e.event_id for e in store.inbox_stale(older_than=-1)) == ["ev-0", "ev-1", "ev-2"]
    assert store.inbox_stale(older_than=-1)[0] in events
    # Provisional until confirmed: claimed again, by the store as by the script.
    assert store.claim_many(keys[:1]) == [True]
    asyncio.run(act("confirm", keys[:2]))
    assert store.claim_many(keys) == [False, False, True]
    assert store.redis.ttl(store.k("dedupe", "generic", "ev-0")) > 24 * 3600
    asyncio.run(act("release", keys[2:]))
    assert store.redis.hget(store.k("inbox"), "ev-2") is None
    assert asyncio.run(claim(keys, journal)) == [False, False, True]
    # And what the store confirmed, the script sees as a duplicate.
    store.confirm("generic", "ev-9")
    assert asyncio.run(claim([("generic", "ev-9")], [("ev-9", "{}")])) == [False]


def test_async_twin_reaches_the_same_database(redis_url: str) -> None:
    from acw_sync.claims import async_twin

    client = redis.Redis.from_url(redis_url, db=3, decode_responses=True, socket_timeout=5)

    async def write() -> None:
        twin = async_twin(client)
        try:
            await twin.set("acw-test:twin", "é")
            assert await twin.get("acw-test:twin") == "é"  # decode_responses carried over
        finally:
            await twin.aclose()

    asyncio.run(write())
    assert client.get("acw-test:twin") == "é"
    client.delete("acw-test:twin")
    client.close()


def test_the_async_publish_pushes_what_the_sync_one_pushes(
    redis_client: redis.Redis, redis_url: str, store: StateStore
) -> None:
    publisher = RedisPublisher(redis_url)
    enqueuer = Enqueuer(store, publisher, publish_async=publisher.publish_async)

    async def run() -> list[Any]:
        first = await enqueuer.enqueue("generic", [_event(1), _event(2)])
        # The claims are confirmed after the answers, before the next flush: a duplicate.
        return [first, await enqueuer.enqueue("generic", [_event(1)])]

    first, again = asyncio.run(run())
    assert [e.event_id for e in first.accepted] == ["ev-1", "ev-2"]
    assert again.accepted == [] and again.duplicates == ["ev-1"]
    raw = redis_client.lrange("acw", 0, -1)
    redis_client.delete("acw")
    publisher([_event(1), _event(2)])
    [sync_batch_raw] = redis_client.lrange("acw", 0, -1)
    publisher.close()
    assert len(raw) == 1  # the duplicate was not published
    assert _mask(json.loads(raw[0])) == _mask(json.loads(sync_batch_raw))
    assert _bodies(raw) == [("acw.process_events", ["ev-1", "ev-2"])]


def test_each_request_is_answered_once_its_batch_message_is_on_the_queue(
    redis_client: redis.Redis, redis_url: str, store: StateStore
) -> None:
    """Concurrent requests: when a request learns "accepted", a message carrying its events
    is on the broker already (the server answers 202 only then)."""
    publisher = RedisPublisher(redis_url)
    enqueuer = Enqueuer(store, publisher, publish_async=publisher.publish_async)

    def on_queue() -> set[str]:
        return {i for _, ids in _bodies(redis_client.lrange("acw", 0, -1)) for i in ids}

    async def request(n: int) -> tuple[list[str], set[str]]:
        done = await enqueuer.enqueue("generic", [_event(2 * n, f"c{n}"), _event(2 * n + 1)])
        return [e.event_id for e in done.accepted], on_queue()  # read as the answer goes out

    async def run() -> list[tuple[list[str], set[str]]]:
        return await asyncio.gather(*(request(n) for n in range(6)))

    answers = asyncio.run(run())
    publisher.close()
    for accepted, queued in answers:
        assert len(accepted) == 2 and set(accepted) <= queued
    tasks = [task for task, _ in _bodies(redis_client.lrange("acw", 0, -1))]
    assert len(tasks) < 6 and set(tasks) == {"acw.process_events"}  # batched, not per request
