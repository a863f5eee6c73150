"""Instants as pages show them: any stored millisecond value renders, those outside the
years 1970 to 9999 as the number itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from kindred.wire.limits import is_instant

__all__ = ["instant", "ms_text", "query"]


def instant(ms: object) -> datetime | None:
    """Epoch milliseconds as a UTC datetime, or None outside the years 1970 to 9999 (or for
    anything not an integer): whatever a store holds, a page can show it."""
    if not is_instant(ms):
        return None
    assert isinstance(ms, int)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def ms_text(ms: object) -> str:
    """Epoch milliseconds as a UTC date and time, to the second; the raw number when it
    names no instant of the years 1970 to 9999."""
    if ms is None:
        return "—"
    at = instant(ms)
    return str(ms) if at is None else at.strftime("%Y-%m-%d %H:%M:%S UTC")


def query(**params: object) -> str:
    """`?a=1&b=2` from the parameters that have a value (lists repeat the key)."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        pairs += [(key, str(v)) for v in values if v not in (None, "")]
    return f"?{urlencode(pairs)}" if pairs else ""
