"""The ACW report as text (table, CSV, JSON) and as a chart a team lead can take in at a glance.

The chart is one self-contained HTML page (or a bare SVG when the path ends in ``.svg``): per
agent or team, a stacked bar of average talk, hold and wrap-up time (the bar's length is the
AHT), the missed-call rate and the follow-ups created. No JavaScript, no external file, no
plotting library.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Literal

from acw_sync.analyzer._figures import ReportRow

__all__ = ["render_report", "write_chart"]

_COLUMNS = [
    ("group", "Agent/team"),
    ("offered", "Offered"),
    ("handled", "Handled"),
    ("missed_rate", "Missed"),
    ("avg_talk", "Avg talk"),
    ("avg_hold", "Avg hold"),
    ("avg_acw", "Avg ACW"),
    ("avg_handle", "AHT"),
    ("followups", "Follow-ups"),
]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    total = round(seconds)
    return f"{total // 60}:{total % 60:02d}"


def _cell(row: ReportRow, field: str) -> str:
    value = getattr(row, field)
    if field == "missed_rate":
        return f"{value:.0%}"
    if field.startswith("avg_"):
        return _duration(value)
    return str(value)


def _plain(row: ReportRow) -> dict[str, object]:
    """Seconds rounded to 0.1 s, rates to 0.0001, for CSV and JSON."""
    out: dict[str, object] = {}
    for key, value in asdict(row).items():
        out[key] = (
            round(value, 4 if key == "missed_rate" else 1) if isinstance(value, float) else value
        )
    return out


def _totals(rows: Sequence[ReportRow]) -> ReportRow:
    handled = sum(r.handled for r in rows)
    offered = sum(r.offered for r in rows)

    def weighted(field: str) -> float | None:
        pairs = [(getattr(r, field), r.handled) for r in rows if getattr(r, field) is not None]
        weight = sum(w for _, w in pairs)
        return sum(v * w for v, w in pairs) / weight if weight else None

    return ReportRow(
        group="All",
        offered=offered,
        handled=handled,
        missed=sum(r.missed for r in rows),
        missed_rate=sum(r.missed for r in rows) / offered if offered else 0.0,
        avg_talk=weighted("avg_talk"),
        avg_hold=weighted("avg_hold"),
        avg_acw=weighted("avg_acw"),
        avg_handle=weighted("avg_handle"),
        total_acw=sum(r.total_acw for r in rows),
        followups=sum(r.followups for r in rows),
    )


def render_report(rows: Sequence[ReportRow], fmt: Literal["table", "csv", "json"] = "table") -> str:
    """The rows as an aligned text table (with a total line), CSV or JSON (seconds)."""
    if fmt == "json":
        return json.dumps([_plain(r) for r in rows], indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(
            out, fieldnames=list(ReportRow.__dataclass_fields__), lineterminator="\n"
        )
        writer.writeheader()
        for row in rows:
            writer.writerow(_plain(row))
        return out.getvalue()
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r} (table, csv or json)")
    if not rows:
        return "No calls in this period."
    lines = [[title for _, title in _COLUMNS]]
    lines += [[_cell(r, f) for f, _ in _COLUMNS] for r in rows]
    lines.append([_cell(_totals(rows), f) for f, _ in _COLUMNS])
    widths = [max(len(line[i]) for line in lines) for i in range(len(_COLUMNS))]

    def fmt_line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    rule = "  ".join("-" * w for w in widths)
    body = [fmt_line(line) for line in lines[1:-1]]
    return "\n".join([fmt_line(lines[0]), rule, *body, rule, fmt_line(lines[-1])])


_COLOURS = {"talk": "#3b82f6", "hold": "#f59e0b", "acw": "#ef4444"}


def _svg(rows: Sequence[ReportRow], title: str) -> str:
    label_w, bar_w, side_w, row_h, top = 190, 460, 340, 34, 78
    width = label_w + bar_w + side_w + 20
    height = top + row_h * max(1, len(rows)) + 40
    longest = max((r.avg_handle or 0.0 for r in rows), default=0.0) or 1.0
    scale = bar_w / longest
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="13">',
        f'<text x="10" y="24" font-size="17" font-weight="600">{escape(title)}</text>',
    ]
    legend_x = 10
    for key, name in (("talk", "talk"), ("hold", "hold"), ("acw", "wrap-up (ACW)")):
        parts.append(f'<rect x="{legend_x}" y="38" width="12" height="12" fill="{_COLOURS[key]}"/>')
        parts.append(f'<text x="{legend_x + 17}" y="49">{name}</text>')
        legend_x += 30 + 8 * len(name)
    parts.append(
        f'<text x="{label_w + bar_w + 100}" y="49" fill="#444">missed calls · follow-ups created</text>'
    )
    for i, row in enumerate(rows):
        y = top + i * row_h
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end">{escape(row.group)}</text>'
        )
        x = float(label_w)
        for key, value in (("talk", row.avg_talk), ("hold", row.avg_hold), ("acw", row.avg_acw)):
            w = (value or 0.0) * scale
            if w > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 12}" '
                    f'fill="{_COLOURS[key]}"><title>{escape(row.group)}: {key} {_duration(value)}</title></rect>'
                )
            x += w
        parts.append(
            f'<text x="{x + 6:.1f}" y="{y + 17}" fill="#111">AHT {_duration(row.avg_handle)}</text>'
        )
        rate_colour = "#b91c1c" if row.missed_rate >= 0.2 else "#444"
        parts.append(
            f'<text x="{label_w + bar_w + 100}" y="{y + 17}" fill="{rate_colour}">'
            f"{row.missed_rate:.0%} of {row.offered} · {row.followups} "
            f"follow-up{'' if row.followups == 1 else 's'}</text>"
        )
    if not rows:
        parts.append(f'<text x="{label_w}" y="{top + 17}">No calls in this period.</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def write_chart(
    rows: Sequence[ReportRow], path: str | Path, *, title: str = "Handle time by agent"
) -> Path:
    """Write the chart: an HTML page, or a bare SVG when ``path`` ends in ``.svg``."""
    target = Path(path)
    svg = _svg(rows, title)
    if target.suffix.lower() == ".svg":
        target.write_text(svg, encoding="utf-8")
        return target
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    table = render_report(rows, "table")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#111}}
pre{{background:#f6f6f6;padding:12px;border-radius:6px}}</style></head>
<body>
{svg}
<p>Bars: average talk, hold and wrap-up (ACW) time per handled call; the whole bar is the
average handle time (AHT). Generated {stamp}.</p>
<pre>{escape(table)}</pre>
</body></html>
"""
    target.write_text(page, encoding="utf-8")
    return target
