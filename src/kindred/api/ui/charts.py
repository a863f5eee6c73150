"""Small SVG pictures drawn on the server: bars of events per day, audience size over time."""

from __future__ import annotations

from collections.abc import Sequence

from kindred.api.ui.html import Html, h, instant, join

__all__ = ["day_bars", "size_steps"]

_W, _H, _PAD = 640, 120, 24


def _day(ms: int, fmt: str = "%b %d") -> str:
    at = instant(ms)
    return str(ms) if at is None else at.strftime(fmt)


def day_bars(per_day: Sequence[tuple[int, int]], label: str) -> Html:
    """One bar per day; the busiest day fills the height."""
    if not per_day:
        return Html("")
    top = max(count for _, count in per_day) or 1
    width = (_W - 2 * _PAD) / len(per_day)
    bars = join(
        h(
            '<rect class="bar" x="{x}" y="{y}" width="{w}" height="{ht}">'
            "<title>{day}: {count}</title></rect>",
            x=round(_PAD + i * width + 1, 1),
            y=round(_H - _PAD - count / top * (_H - 2 * _PAD), 1),
            w=round(max(width - 2, 1), 1),
            ht=round(count / top * (_H - 2 * _PAD), 1),
            day=_day(day),
            count=count,
        )
        for i, (day, count) in enumerate(per_day)
    )
    return _frame(label, bars, _day(per_day[0][0]), _day(per_day[-1][0]), top)


def size_steps(points: Sequence[tuple[int, int]], now_ms: int, label: str) -> Html:
    """A step line of (instant, size) points, held until now."""
    if not points:
        return h('<p class="muted">{}</p>', "No membership changes yet.")
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
    line = h('<polyline class="line" points="{}"/>', " ".join(coords))
    # Within two days the hours tell more than the dates.
    fmt = "%b %d %H:%M" if span < 2 * 86_400_000 else "%b %d"
    return _frame(label, line, _day(start, fmt), _day(now_ms, fmt), top)


def _frame(label: str, marks: Html, first: str, last: str, top: int) -> Html:
    return h(
        '<svg class="chart" viewBox="0 0 {w} {hgt}" role="img" aria-label="{label}">'
        "<title>{label}</title>"
        '<line class="axis" x1="{pad}" y1="{base}" x2="{right}" y2="{base}"/>'
        "{marks}"
        '<text x="{pad}" y="{below}">{first}</text>'
        '<text x="{right}" y="{below}" text-anchor="end">{last}</text>'
        '<text x="{pad}" y="14">{top}</text>'
        "</svg>",
        w=_W,
        hgt=_H,
        label=label,
        pad=_PAD,
        right=_W - _PAD,
        base=_H - _PAD,
        below=_H - 6,
        marks=marks,
        first=first,
        last=last,
        top=top,
    )
