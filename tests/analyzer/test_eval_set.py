"""The evaluation set loads and the development split stays above the targets.

Only the development split is checked here; the held-out split is run by hand at the end of a
change (``python bench/eval_analyzer.py --split heldout``), never tuned against.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "eval_analyzer.py"


def _bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("eval_analyzer", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["eval_analyzer"] = module
    spec.loader.exec_module(module)
    return module


def test_eval_set_is_large_and_labelled() -> None:
    bench = _bench()
    calls = bench.load_split("all")
    assert len(calls) >= 60
    assert len({c["id"] for c in calls}) == len(calls)
    for call in calls:
        assert set(call["expected"]) == {"resolution", "sentiment", "categories", "action_items"}
        bench.to_record(call)  # every call is a valid CallRecord


def test_dev_split_meets_targets() -> None:
    figures = _bench().evaluate("dev", verbose=False)
    assert figures["resolution"] >= 0.85
    assert figures["sentiment"] >= 0.85
    assert figures["due"] >= 0.90
    assert figures["faithful"] == 1.0
