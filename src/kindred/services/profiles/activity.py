"""What the web UI reads from the event log: a profile's event timeline (UI-1) and the
Live Stream of recent batches (UI-2).

Batches are kept as received; here they are read loosely (any field may be missing or
odd), since a page must show what came in, not refuse it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from kindred.ports import LogEntry, RejectEntry
from kindred.wire.limits import too_deep

__all__ = [
    "ActivityReader",
    "LiveCursor",
    "LiveFilter",
    "LiveItem",
    "Timeline",
    "TimelineEvent",
]

DAY_MS = 86_400_000


class _LooseEvent(msgspec.Struct, kw_only=True):
    event_type: str = "unknown"
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class _LooseBatch(msgspec.Struct, kw_only=True):
    environment: str | None = None
    events: list[_LooseEvent] | None = None
    timestamp_unixtime_ms: int | None = None


_BATCH = msgspec.json.Decoder(_LooseBatch)


class _LogReader(Protocol):
    def latest_log(self, limit: int) -> list[LogEntry]: ...

    def read_log(self, after_id: int, limit: int) -> list[LogEntry]: ...

    def log_for_profile(self, mpid: int, limit: int) -> list[LogEntry]: ...

    def list_rejects(self, kind: str | None, limit: int) -> list[RejectEntry]: ...


class TimelineEvent(msgspec.Struct, frozen=True, kw_only=True):
    at_ms: int
    event_type: str
    name: str
    input: str
    log_id: int | None


class Timeline(msgspec.Struct, frozen=True, kw_only=True):
    events: list[TimelineEvent]  # this page, newest first
    total: int  # events passing the filter
    page: int
    pages: int
    event_types: list[str]  # every type the profile has, for the filter
    per_day: list[tuple[int, int]]  # (day start ms, events) over the recent days, oldest first
    batches_read: int
    truncated: bool  # more batches than were read


class LiveFilter(msgspec.Struct, frozen=True, kw_only=True):
    input: str | None = None
    event_type: str | None = None
    # "development" (the default: the batches of development data) or None for every one.
    environment: str | None = "development"


class LiveCursor(msgspec.Struct, frozen=True):
    """The newest event-log and reject ids already shown."""

    log_id: int = 0
    reject_id: int = 0

    def text(self) -> str:
        return f"{self.log_id}-{self.reject_id}"

    @classmethod
    def parse(cls, text: str | None) -> LiveCursor | None:
        log_id, _, reject_id = (text or "").partition("-")
        if not (log_id.isdigit() and reject_id.isdigit()):
            return None
        return cls(int(log_id), int(reject_id))


class LiveItem(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # "batch" | "rejected" | "quarantined"
    id: int
    input: str
    received_ms: int
    environment: str | None
    mpid: int | None
    status: str
    reason: str | None
    event_types: list[str]
    body_text: str  # the batch, indented when it is JSON


class ActivityReader:
    def __init__(self, store: _LogReader, *, max_batches: int = 2000) -> None:
        self._store = store
        self._max_batches = max_batches

    def timeline(
        self,
        mpid: int,
        now_ms: int,
        *,
        event_type: str | None = None,
        page: int = 0,
        per_page: int = 50,
    ) -> Timeline:
        entries = self._store.log_for_profile(mpid, self._max_batches + 1)
        truncated = len(entries) > self._max_batches
        events = [e for entry in entries[: self._max_batches] for e in _events_of(entry)]
        events.sort(key=lambda e: (e.at_ms, e.log_id or 0), reverse=True)
        types = sorted({e.event_type for e in events})
        chosen = [e for e in events if event_type in (None, e.event_type)]
        pages = max(1, -(-len(chosen) // per_page))
        page = min(max(page, 0), pages - 1)
        return Timeline(
            events=chosen[page * per_page : (page + 1) * per_page],
            total=len(chosen),
            page=page,
            pages=pages,
            event_types=types,
            per_day=_per_day(chosen, now_ms, days=30),
            batches_read=min(len(entries), self._max_batches),
            truncated=truncated,
        )

    def live(
        self, live_filter: LiveFilter, after: LiveCursor | None, limit: int = 50
    ) -> tuple[list[LiveItem], LiveCursor]:
        """The newest batches and refused batches passing the filter, newest first; with a
        cursor, only those that came after it."""
        if after is None:
            entries = self._store.latest_log(limit * 4)
        else:
            entries = self._store.read_log(after.log_id, limit * 4)
        rejects = self._store.list_rejects(None, limit)
        if after is not None:
            rejects = [r for r in rejects if (r.id or 0) > after.reject_id]
        cursor = LiveCursor(
            max([after.log_id if after else 0, *(e.id or 0 for e in entries)]),
            max([after.reject_id if after else 0, *(r.id or 0 for r in rejects)]),
        )
        items = [*(_logged_item(e) for e in entries), *(_rejected_item(r) for r in rejects)]
        kept = [i for i in items if _passes(i, live_filter)]
        kept.sort(key=lambda i: (i.received_ms, i.kind == "batch", i.id), reverse=True)
        return kept[:limit], cursor

    def inputs_seen(self, limit: int = 500) -> list[str]:
        return sorted({e.input for e in self._store.latest_log(limit)})


def _decoded(body: bytes) -> _LooseBatch | None:
    # A refused batch is kept as it came, however deep (and so may a batch be that was
    # stored before the nesting limit): none is read past the limit.
    if too_deep(body):
        return None
    try:
        return _BATCH.decode(body)
    except msgspec.DecodeError:
        return None


def _events_of(entry: LogEntry) -> list[TimelineEvent]:
    batch = _decoded(entry.body)
    if batch is None:
        return []
    fallback = batch.timestamp_unixtime_ms or entry.received_ms
    return [
        TimelineEvent(
            at_ms=_int(event.data.get("timestamp_unixtime_ms")) or fallback,
            event_type=event.event_type,
            name=_event_name(event),
            input=entry.input,
            log_id=entry.id,
        )
        for event in batch.events or []
    ]


def _event_name(event: _LooseEvent) -> str:
    for key in ("event_name", "screen_name"):
        value = event.data.get(key)
        if isinstance(value, str) and value:
            return value
    action = event.data.get("product_action")
    if isinstance(action, dict) and isinstance(action.get("action"), str):
        return str(action["action"])
    return ""


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _per_day(events: Sequence[TimelineEvent], now_ms: int, days: int) -> list[tuple[int, int]]:
    today = now_ms - now_ms % DAY_MS
    counts = Counter(e.at_ms - e.at_ms % DAY_MS for e in events)
    return [
        (day, counts.get(day, 0)) for day in range(today - (days - 1) * DAY_MS, today + 1, DAY_MS)
    ]


def _logged_item(entry: LogEntry) -> LiveItem:
    return _item(
        entry.body,
        kind="batch",
        id=entry.id or 0,
        input=entry.input,
        received_ms=entry.received_ms,
        mpid=entry.mpid,
        status=entry.status,
        reason=entry.reason,
    )


def _rejected_item(entry: RejectEntry) -> LiveItem:
    return _item(
        entry.body,
        kind=entry.kind,
        id=entry.id or 0,
        input=entry.input,
        received_ms=entry.received_ms,
        mpid=None,
        status=entry.kind,
        reason=entry.reason,
    )


def _item(body: bytes, **known: Any) -> LiveItem:
    """A Live Stream entry: what the log keeps, and what the batch itself says."""
    batch = _decoded(body)
    return LiveItem(
        **known,
        environment=batch.environment if batch else None,
        event_types=[e.event_type for e in batch.events or []] if batch else [],
        body_text=_pretty(body),
    )


def _passes(item: LiveItem, live_filter: LiveFilter) -> bool:
    if live_filter.input and item.input != live_filter.input:
        return False
    if live_filter.event_type and live_filter.event_type not in item.event_types:
        return False
    wanted = live_filter.environment
    if wanted is None:
        return True
    if item.kind == "batch":
        return item.environment == wanted
    # A refused batch that cannot be read has no environment: it is shown, since that is
    # what a developer sending it needs to see.
    return item.environment in (wanted, None)


def _pretty(body: bytes) -> str:
    try:
        if too_deep(body):
            raise ValueError("nested too deep to indent")
        value = json.loads(body)
        pretty = json.dumps(value, indent=2, ensure_ascii=False)
        if not pretty.isascii():
            try:
                pretty.encode()
            except UnicodeEncodeError:
                # A lone surrogate (`"\ud800"` is valid JSON): kept escaped, as UTF-8
                # cannot carry it to the page.
                pretty = json.dumps(value, indent=2)
        return pretty
    except (ValueError, UnicodeDecodeError):
        return body.decode("utf-8", errors="replace")
