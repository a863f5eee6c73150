"""Careful HTML helpers: every value is escaped unless it is already markup.

`Html` marks text that is markup; `h(template, ...)` escapes each argument that is not and
fills the template (a literal written here, never user data). Nothing else makes markup, so
a value that reaches a page without passing through `h` or `esc` cannot be unescaped.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

from kindred.wire.limits import is_instant

__all__ = ["Html", "esc", "h", "instant", "join", "ms_text", "path_part", "query", "when"]


class Html(str):
    """Text that is markup already (escaped or written here)."""

    __slots__ = ()


def esc(value: object) -> Html:
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def h(template: str, *args: object, **kwargs: object) -> Html:
    """`template` with `{}` / `{name}` fields filled by escaped values."""
    return Html(template.format(*(esc(a) for a in args), **{k: esc(v) for k, v in kwargs.items()}))


def join(parts: Iterable[object], separator: str = "") -> Html:
    return Html(separator.join(esc(p) for p in parts))


def path_part(value: object) -> str:
    """A value made safe to stand as one segment of a URL path."""
    return quote(str(value), safe="")


def query(**params: object) -> str:
    """`?a=1&b=2` from the parameters that have a value (lists repeat the key)."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        pairs += [(key, str(v)) for v in values if v not in (None, "")]
    return f"?{urlencode(pairs)}" if pairs else ""


def instant(ms: object) -> datetime | None:
    """Epoch milliseconds as a UTC datetime, or None outside the years 1970 to 9999 (or for
    anything not an integer): whatever a store holds, a page can show it."""
    if not is_instant(ms):
        return None
    assert isinstance(ms, int)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def ms_text(ms: int | None) -> str:
    """Epoch milliseconds as a UTC date and time, to the second; the raw number when it
    names no instant of the years 1970 to 9999."""
    if ms is None:
        return "—"
    at = instant(ms)
    return str(ms) if at is None else at.strftime("%Y-%m-%d %H:%M:%S UTC")


def when(ms: int | None) -> Html:
    """An instant as a <time> element (kept on one line by the stylesheet); the raw number
    when it names no instant of the years 1970 to 9999."""
    if ms is None:
        return Html("—")
    at = instant(ms)
    if at is None:
        return esc(ms)
    return h('<time datetime="{}">{}</time>', at.isoformat(timespec="milliseconds"), ms_text(ms))
