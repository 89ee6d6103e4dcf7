"""Charts drawn on the server as SVG shapes the templates lay out (no script, no library):
a strip per invoice series with its issued, missing and cancelled numbers, and a timeline
of outage windows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

WIDTH = 1000.0
#: The narrowest a range is drawn, so one missing number still shows on a long series.
MIN_WIDTH = 2.0


@dataclass(frozen=True, slots=True)
class Bar:
    kind: str  # issued | missing | cancelled | primary | upstream | ...
    x: float
    width: float
    label: str


def _bar(kind: str, first: float, last: float, low: float, span: float, label: str) -> Bar:
    x = (first - low) / span * WIDTH
    width = max(MIN_WIDTH, (last - first) / span * WIDTH)
    return Bar(kind, round(min(x, WIDTH - width), 2), round(width, 2), label)


def series_strip(sequence: dict[str, Any]) -> list[Bar]:
    """The numbers from where the series starts to its last: issued underneath, then the
    missing and cancelled ranges over it (a report sequence of `missing_report`)."""
    low = float(min(sequence["expected_first"], sequence["first"]))
    high = float(sequence["last"]) + 1
    span = max(high - low, 1.0)
    bars = [_bar("issued", low, high, low, span, f"{int(low)}–{int(high) - 1}")]
    for kind in ("missing", "cancelled"):
        for first, last in sequence[kind]:
            bars.append(
                _bar(
                    kind,
                    first,
                    last + 1,
                    low,
                    span,
                    f"{first}–{last}" if first != last else str(first),
                )
            )
    return bars


def timeline(windows: list[dict[str, Any]], start: datetime, end: datetime) -> list[Bar]:
    """Outage windows (their `as_dict`) between `start` and `end`; an open one runs to `end`."""
    span = max((end - start).total_seconds(), 1.0)
    bars = []
    for w in windows:
        w_start = datetime.fromisoformat(w["start"])
        w_end = datetime.fromisoformat(w["end"]) if w["end"] else end
        if w_end < start or w_start > end:
            continue
        first = (max(w_start, start) - start).total_seconds()
        last = (min(w_end, end) - start).total_seconds()
        bars.append(
            _bar(
                f"{w['system']} {w['kind']}",
                first,
                last,
                0.0,
                span,
                f"#{w['id']} {w['system']} {w['kind']}: {w['start']} → {w['end'] or '…'}",
            )
        )
    return bars
