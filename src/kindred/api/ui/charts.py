"""Small SVG pictures drawn on the server: bars of events per day, audience size over time.
This module computes their geometry; `templates/charts.html` draws it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kindred.api.ui.render import Markup, fragment
from kindred.api.ui.times import instant

__all__ = ["Bar", "Chart", "day_bars", "day_bars_chart", "size_steps", "size_steps_chart"]

_W, _H, _PAD = 640, 120, 24


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: str
    count: int


@dataclass(frozen=True, slots=True)
class Chart:
    label: str
    # Nothing to draw: the line said instead (or nothing at all when empty and no marks).
    empty: str = ""
    marks: bool = False
    bars: Sequence[Bar] = field(default_factory=tuple)
    line: str = ""  # polyline points
    first: str = ""
    last: str = ""
    top: int = 0
    width: int = _W
    height: int = _H
    pad: int = _PAD
    right: int = _W - _PAD
    base: int = _H - _PAD
    below: int = _H - 6


def _day(ms: int, fmt: str = "%b %d") -> str:
    at = instant(ms)
    return str(ms) if at is None else at.strftime(fmt)


def day_bars_chart(per_day: Sequence[tuple[int, int]], label: str) -> Chart:
    """One bar per day; the busiest day fills the height."""
    if not per_day:
        return Chart(label=label)
    top = max(count for _, count in per_day) or 1
    width = (_W - 2 * _PAD) / len(per_day)
    bars = tuple(
        Bar(
            x=round(_PAD + i * width + 1, 1),
            y=round(_H - _PAD - count / top * (_H - 2 * _PAD), 1),
            width=round(max(width - 2, 1), 1),
            height=round(count / top * (_H - 2 * _PAD), 1),
            day=_day(day),
            count=count,
        )
        for i, (day, count) in enumerate(per_day)
    )
    first, last = _day(per_day[0][0]), _day(per_day[-1][0])
    return Chart(label=label, marks=True, bars=bars, first=first, last=last, top=top)


def size_steps_chart(points: Sequence[tuple[int, int]], now_ms: int, label: str) -> Chart:
    """A step line of (instant, size) points, held until now."""
    if not points:
        return Chart(label=label, empty="No membership changes yet.")
    start = points[0][0]
    span = max(now_ms - start, 1)
    top = max(1, *(size for _, size in points))

    def x(ms: int) -> float:
        return round(_PAD + (ms - start) / span * (_W - 2 * _PAD), 1)

    def y(size: int) -> float:
        return round(_H - _PAD - size / top * (_H - 2 * _PAD), 1)

    coords: list[str] = []
    previous = 0
    for ms, size in points:
        coords += [f"{x(ms)},{y(previous)}", f"{x(ms)},{y(size)}"]
        previous = size
    coords.append(f"{x(now_ms)},{y(previous)}")
    # Within two days the hours tell more than the dates.
    fmt = "%b %d %H:%M" if span < 2 * 86_400_000 else "%b %d"
    first, last = _day(start, fmt), _day(now_ms, fmt)
    return Chart(label=label, marks=True, line=" ".join(coords), first=first, last=last, top=top)


def day_bars(per_day: Sequence[tuple[int, int]], label: str) -> Markup:
    return fragment("charts.html", "chart", day_bars_chart(per_day, label))


def size_steps(points: Sequence[tuple[int, int]], now_ms: int, label: str) -> Markup:
    return fragment("charts.html", "chart", size_steps_chart(points, now_ms, label))
