"""Careful HTML helpers: every value is escaped unless it is already markup.

`Html` marks text that is markup; `h(template, ...)` escapes each argument that is not and
fills the template (a literal written here, never user data). Nothing else makes markup, so
a value that reaches a page without passing through `h` or `esc` cannot be unescaped.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

__all__ = ["Html", "esc", "h", "join", "ms_text", "path_part", "query", "when"]


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


def ms_text(ms: int | None) -> str:
    """Epoch milliseconds as a UTC date and time, to the second."""
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def when(ms: int | None) -> Html:
    """An instant as a <time> element (kept on one line by the stylesheet)."""
    if ms is None:
        return Html("—")
    iso = datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    return h('<time datetime="{}">{}</time>', iso, ms_text(ms))
