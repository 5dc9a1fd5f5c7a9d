"""Dead letters with real processes: a CRM that rejects records and one that refuses the
credentials; `acw-sync dlq list/show/replay/purge`; replay is idempotent."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.faults.harness import Stack, make_calls, send_stream, settle, start_stack, wait_for


def cli(stack: Stack, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "acw_sync", "dlq", *args],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_dead_letters_are_listed_alerted_and_replayed_once(redis_url: str, tmp_path: Path) -> None:
    stack = start_stack(tmp_path, redis_url, workers=1)
    try:
        # 1. the CRM rejects the next 5 writes: permanent errors, dead-lettered at once
        rejected = make_calls("rej", 5)
        stack.crm.inject_fault("reject", 5)
        send_stream(stack, [d for c in rejected for d in c.bodies])
        counts = settle(stack, rejected, timeout=60)
        assert counts.ok and counts.dead == 5 and counts.reasons == {"rejected": 5}, counts.line()

        # 2. credentials revoked: dead letters with reason "credentials" and one alert each
        stack.crm.set_setting("api_token", "rotated-by-the-admin")
        locked = make_calls("cred", 3)
        send_stream(stack, [d for c in locked for d in c.bodies])
        counts = settle(stack, locked, timeout=60)
        assert counts.dead == 3 and counts.reasons == {"credentials": 3}, counts.line()
        alerts = [
            json.loads(line)
            for line in (stack.root / "worker-0.log").read_text().splitlines()
            if '"alert": "credentials"' in line
        ]
        assert sorted(a["call_key"] for a in alerts) == sorted(c.key for c in locked)

        listed = cli(stack, "list", "--reason", "credentials", "--json").splitlines()
        assert len(listed) == 3
        shown = json.loads(cli(stack, "show", json.loads(listed[0])["id"]))
        assert shown["reason"] == "credentials" and shown["call"]["call_id"].startswith("cred-")
        assert "no dead letters" in cli(stack, "list", "--connector", "nope")
        assert "8 dead letter(s)" in cli(stack, "list")
        assert "no dead letters" in cli(stack, "list", "--older-than", "1h")

        # 3. the admin fixes things and replays: everything lands, exactly once
        stack.crm.set_setting("api_token", None)
        assert "5 dead letter(s) replayed" in cli(stack, "replay", "--reason", "rejected")
        assert "3 dead letter(s) replayed" in cli(stack, "replay", "--all")
        everything = rejected + locked
        counts = settle(stack, everything, timeout=60)
        assert counts.ok and counts.synced == 8 and counts.dead == 0, counts.line()
        # replaying what is already synced changes nothing (the ledger says "unchanged")
        for call in everything[:3]:
            stack.redis.delete(f"acw:ledger:crm:{call.key}")  # even with the ledger lost
        from acw_sync.tasks import configure_broker, enqueue_sync

        configure_broker(stack.redis_url)
        for call in everything:
            enqueue_sync("crm", call.key, time.time(), 0)
        wait_for(lambda: stack.redis.llen("acw") == 0, 30, "the queue to drain", stack)
        time.sleep(1.0)
        counts = settle(stack, everything, timeout=30)
        assert counts.ok and counts.synced == 8 and counts.activities == 8, counts.line()

        # 4. purge
        stack.crm.inject_fault("reject", 1)
        one = make_calls("purge", 1)
        send_stream(stack, one[0].bodies)
        assert settle(stack, one, timeout=30).dead == 1
        assert "1 dead letter(s) purged" in cli(stack, "purge", "--all", "--yes")
        assert "no dead letters" in cli(stack, "list")
    finally:
        stack.stop()
