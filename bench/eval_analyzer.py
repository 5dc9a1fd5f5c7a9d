"""Accuracy of the offline analyzer against the hand-labelled evaluation set, and its speed.

    python bench/eval_analyzer.py                 # the development split
    python bench/eval_analyzer.py --split heldout # the held-out split (run only at the end)
    python bench/eval_analyzer.py --split fresh   # a second blind batch, written after tuning
    python bench/eval_analyzer.py --split final   # a third blind batch
    python bench/eval_analyzer.py --split last    # a fourth blind batch
    python bench/eval_analyzer.py --split check   # a fifth blind batch (first-run figures in docs)
    python bench/eval_analyzer.py --split all -v  # both, listing every mismatch

Prints, per field: outcome (resolution) and sentiment accuracy, categories (mean Jaccard and
exact set), action-item due times exactly right (all calls: the same list of due moments; and
only the calls that carry a promise), summary faithfulness (every summary sentence appears
verbatim in a note or a transcript turn) and the time to analyze 1,000 calls.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from acw_sync.analyzer import AnalysisContext, OfflineAnalyzer
from acw_sync.analyzer._text import split_sentences
from acw_sync.model import Agent, Analysis, CallRecord, Note, Speaker, Utterance

EVAL_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "eval"
TARGETS = {"resolution": 0.85, "sentiment": 0.85, "due": 0.90, "faithful": 1.0}


def _local(value: str, zone: ZoneInfo) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def load_split(split: str) -> list[dict[str, Any]]:
    names = ["dev", "heldout", "fresh", "final", "last", "check"] if split == "all" else [split]
    calls: list[dict[str, Any]] = []
    for name in names:
        calls.extend(json.loads((EVAL_DIR / f"{name}.json").read_text(encoding="utf-8")))
    return calls


def to_record(call: dict[str, Any]) -> CallRecord:
    zone = ZoneInfo(call["timezone"])
    ended = _local(call["ended_local"], zone)
    agent = call.get("agent")
    return CallRecord(
        key=f"eval:{call['id']}",
        provider="eval",
        call_id=call["id"],
        direction=call.get("direction"),
        agent=Agent(**agent) if agent else None,
        started_at=ended - timedelta(seconds=call.get("duration") or 0),
        ended_at=ended,
        duration=call.get("duration"),
        talk_time=call.get("talk_time"),
        hold_time=call.get("hold_time"),
        wrapup_time=call.get("wrapup_time"),
        outcome=call.get("outcome"),
        disposition=call.get("disposition"),
        tags=call.get("tags") or [],
        notes=[Note(text=t) for t in call.get("notes") or []],
        transcript=[Utterance(speaker=Speaker(s), text=t) for s, t in call.get("transcript") or []],
        ended=True,
    )


def expected_dues(call: dict[str, Any]) -> list[datetime | None]:
    zone = ZoneInfo(call["timezone"])
    dues = [_local(i["due"], zone) if i["due"] else None for i in call["expected"]["action_items"]]
    return sorted(dues, key=lambda d: (d is None, d or datetime.min.replace(tzinfo=zone)))


def predicted_dues(analysis: Analysis) -> list[datetime | None]:
    dues = [i.due_at for i in analysis.action_items]
    return sorted(
        dues, key=lambda d: (d is None, d or datetime.min.replace(tzinfo=ZoneInfo("UTC")))
    )


def faithful(summary: str, record: CallRecord) -> bool:
    sources = [n.text for n in record.notes] + [u.text for u in record.transcript]
    return all(any(s in src for src in sources) for s in split_sentences(summary))


def evaluate(split: str, verbose: bool) -> dict[str, float]:
    analyzer = OfflineAnalyzer()
    calls = load_split(split)
    n = len(calls)
    hits = {
        "resolution": 0,
        "sentiment": 0,
        "categories_exact": 0,
        "due": 0,
        "faithful": 0,
        "kinds": 0,
    }
    jaccard = 0.0
    promised = promised_hits = 0
    for call in calls:
        record = to_record(call)
        ctx = AnalysisContext(timezone=ZoneInfo(call["timezone"]))
        got = analyzer.analyze(record, ctx)
        exp = call["expected"]
        problems = []
        if got.resolution == exp["resolution"]:
            hits["resolution"] += 1
        else:
            problems.append(f"resolution {got.resolution} != {exp['resolution']}")
        if got.sentiment == exp["sentiment"]:
            hits["sentiment"] += 1
        else:
            problems.append(
                f"sentiment {got.sentiment} ({got.sentiment_score}) != {exp['sentiment']}"
            )
        want, have = set(exp["categories"]), set(got.categories)
        jaccard += len(want & have) / len(want | have) if want | have else 1.0
        if want == have:
            hits["categories_exact"] += 1
        else:
            problems.append(f"categories {sorted(have)} != {sorted(want)}")
        ok_due = predicted_dues(got) == expected_dues(call)
        hits["due"] += ok_due
        if exp["action_items"]:
            promised += 1
            promised_hits += ok_due
        if sorted(i.kind.value for i in got.action_items) == sorted(
            i["kind"] for i in exp["action_items"]
        ):
            hits["kinds"] += 1
        if not ok_due:
            zone = ZoneInfo(call["timezone"])
            shown = [
                d.astimezone(zone).strftime("%a %Y-%m-%d %H:%M") if d else None
                for d in predicted_dues(got)
            ]
            wanted = [
                d.astimezone(zone).strftime("%a %Y-%m-%d %H:%M") if d else None
                for d in expected_dues(call)
            ]
            problems.append(f"due {shown} != {wanted}")
        if faithful(got.summary, record) and len(got.summary) <= ctx.summary_budget:
            hits["faithful"] += 1
        else:
            problems.append(f"summary not faithful: {got.summary!r}")
        if verbose and problems:
            print(f"  {call['id']}: " + "; ".join(problems))
            if verbose and len(sys.argv) > 0:
                print(f"      summary: {got.summary}")
    figures = {k: v / n for k, v in hits.items()}
    figures["categories_jaccard"] = jaccard / n
    figures["due_promised"] = promised_hits / promised if promised else 1.0
    figures["calls"] = n
    return figures


def timing(count: int) -> float:
    analyzer = OfflineAnalyzer()
    calls = load_split("all")
    records = [(to_record(c), AnalysisContext(timezone=ZoneInfo(c["timezone"]))) for c in calls]
    analyzer.analyze(*records[0])  # load the lexicon outside the measurement
    start = time.perf_counter()
    for i in range(count):
        record, ctx = records[i % len(records)]
        analyzer.analyze(record, ctx)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--split",
        choices=["dev", "heldout", "fresh", "final", "last", "check", "all"],
        default="dev",
    )
    parser.add_argument("--calls", type=int, default=1000, help="calls for the timing run")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every mismatch")
    args = parser.parse_args(argv)

    f = evaluate(args.split, args.verbose)
    seconds = timing(args.calls)
    rows = [
        ("outcome (resolution)", f["resolution"], TARGETS["resolution"]),
        ("sentiment", f["sentiment"], TARGETS["sentiment"]),
        ("categories, mean Jaccard", f["categories_jaccard"], None),
        ("categories, exact set", f["categories_exact"], None),
        ("action items: due times exact, all calls", f["due"], TARGETS["due"]),
        ("action items: due times exact, calls with a promise", f["due_promised"], None),
        ("action items: kinds exact", f["kinds"], None),
        ("summary faithful and within budget", f["faithful"], TARGETS["faithful"]),
    ]
    print(f"split: {args.split} ({int(f['calls'])} calls)")
    for name, value, target in rows:
        mark = (
            ""
            if target is None
            else ("  ok" if value >= target else f"  BELOW target {target:.0%}")
        )
        print(f"  {name:<52} {value:7.1%}{mark}")
    print(
        f"  {'time to analyze ' + str(args.calls) + ' calls':<52} {seconds:6.2f} s"
        f"{'  ok' if seconds < 10 * args.calls / 1000 else '  BELOW target 10 s'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
