"""What the UI reads from the event log: a profile's timeline and the Live Stream."""

from __future__ import annotations

import json

from kindred.ports import LogEntry, RejectEntry
from kindred.services.profiles.activity import DAY_MS, ActivityReader, LiveCursor, LiveFilter
from kindred.storage.memory import MemoryStore

NOW = 1_700_000_000_000


def _batch(environment: str, *events: tuple[str, str, int]) -> bytes:
    return json.dumps(
        {
            "environment": environment,
            "events": [
                {"event_type": t, "data": {"event_name": n, "timestamp_unixtime_ms": at}}
                for t, n, at in events
            ],
        }
    ).encode()


def _log(store: MemoryStore, mpid: int | None, body: bytes, input_name: str = "server") -> None:
    with store.unit_of_work() as uow:
        uow.log.append(
            LogEntry(
                input=input_name,
                workspace_id=1,
                received_ms=NOW,
                status="applied",
                body=body,
                mpid=mpid,
            )
        )


def test_the_timeline_flattens_batches_newest_first_with_pages_and_a_filter() -> None:
    store = MemoryStore()
    for n in range(30):
        _log(
            store,
            7,
            _batch(
                "development",
                ("custom_event", f"e{n}", NOW - n * 1000),
                ("screen_view", f"s{n}", NOW - n * 1000 - 1),
            ),
        )
    _log(store, 8, _batch("development", ("custom_event", "other user", NOW)))
    reader = ActivityReader(store)
    first = reader.timeline(7, NOW, per_page=25)
    assert first.total == 60
    assert first.pages == 3
    assert [e.name for e in first.events[:3]] == ["e0", "s0", "e1"]
    assert first.event_types == ["custom_event", "screen_view"]
    assert first.per_day[-1] == (NOW - NOW % DAY_MS, 60)
    only = reader.timeline(7, NOW, event_type="screen_view", page=1, per_page=25)
    assert only.total == 30
    assert only.page == 1
    assert [e.name for e in only.events] == [f"s{n}" for n in range(25, 30)]
    # A page past the end shows the last one.
    assert reader.timeline(7, NOW, page=99, per_page=25).page == 2


def test_the_timeline_reads_only_the_newest_batches_and_says_so() -> None:
    store = MemoryStore()
    for n in range(5):
        _log(store, 7, _batch("development", ("custom_event", f"e{n}", NOW + n)))
    timeline = ActivityReader(store, max_batches=3).timeline(7, NOW)
    assert timeline.truncated
    assert timeline.batches_read == 3
    assert [e.name for e in timeline.events] == ["e4", "e3", "e2"]


def test_the_live_stream_shows_development_batches_and_refusals_after_a_cursor() -> None:
    store = MemoryStore()
    _log(store, 1, _batch("production", ("custom_event", "prod", NOW)))
    _log(store, 2, _batch("development", ("custom_event", "dev", NOW)), input_name="web")
    with store.unit_of_work() as uow:
        uow.rejects.record(
            RejectEntry(
                input="web",
                received_ms=NOW + 1,
                kind="quarantined",
                reason="events[0]: bad",
                body=b"{not json",
            )
        )
    reader = ActivityReader(store)
    items, cursor = reader.live(LiveFilter(), None)
    assert [(i.kind, i.mpid) for i in items] == [("quarantined", None), ("batch", 2)]
    assert items[0].reason == "events[0]: bad"
    assert items[0].body_text == "{not json"
    assert '"event_name": "dev"' in items[1].body_text
    assert len(reader.live(LiveFilter(environment=None), None)[0]) == 3
    assert reader.live(LiveFilter(input="server"), None)[0] == []
    assert reader.live(LiveFilter(event_type="screen_view"), None)[0] == []
    assert reader.live(LiveFilter(), cursor)[0] == []
    _log(store, 3, _batch("development", ("screen_view", "new", NOW)))
    newer, later = reader.live(LiveFilter(), cursor)
    assert [i.mpid for i in newer] == [3]
    assert LiveCursor.parse(later.text()) == later
    assert LiveCursor.parse("x-1") is None


def test_a_refused_batch_with_a_lone_surrogate_is_shown_escaped() -> None:
    """`"\\ud800"` is valid JSON that UTF-8 cannot carry: the Live Stream shows the batch
    with it escaped (before, the page failed for every later visitor)."""
    store = MemoryStore()
    body = b'{"environment":"development","user_identities":{"customerid":"x\\ud800"}}'
    with store.unit_of_work() as uow:
        uow.rejects.record(
            RejectEntry(input="web", received_ms=NOW, kind="refused", reason="bad", body=body)
        )
    (item,) = ActivityReader(store).live(LiveFilter(environment=None), None)[0]
    item.body_text.encode()  # the page can be written
    assert "\\ud800" in item.body_text
    assert '"customerid": "x\\ud800"' in item.body_text
