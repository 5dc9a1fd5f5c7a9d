"""`acw-sync demo` on a fresh directory: the README's first command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_prints_synced_calls_and_tasks(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACW_")}
    env["COLUMNS"] = "200"
    result = subprocess.run(
        [sys.executable, "-m", "acw_sync", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Call activities" in out and "Follow-up tasks" in out
    assert "Maria Garcia" in out and "Voicemail from +442079460958" in out
    assert "Call back +16285550199 (missed call)" in out
    assert "(duplicate delivery) -> 200" in out
    assert not (tmp_path / ".acw-sync" / "demo" / "redis" / "server.json").exists()
