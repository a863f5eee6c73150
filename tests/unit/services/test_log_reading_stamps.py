"""An activation reading a logged batch's event stamps folds exactly what it folds from
the batch's body, for histories that take events by key alone (AUD-5); histories with
conditions still read the body."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.audiences.evaluate import event_key
from kindred.audiences.history import HistorySpec, fold_events, fold_taken, histories_of
from kindred.domain.observation import EventFact
from kindred.domain.stamps import event_stamps, stamped_events
from kindred.domain.tenancy import AccountPolicy, InputDef, SourceType, WorkspaceDef
from kindred.ports import BatchStatus, LogEntry
from kindred.services.audiences.log_reading import LogReading
from kindred.wire.observe import observe

NOW = 1_700_000_000_000
DAY = 86_400_000
WS = WorkspaceDef(workspace_id=1, name="one", account=AccountPolicy(account_id=1))
INPUTS = {
    name: InputDef(
        name=name, workspace=WS, source_type=SourceType.SERVER, api_key=name, api_secret="x"
    )
    for name in ("web", "app")
}
NAMES = ["Play", "play", "PLAY", "Stop", "Ünïcode", 'quo"te', "a/b", "K"]
# The event keys a history may take (names lower-cased, as criteria are bound).
KEYS = [
    "custom_event",
    "screen_view",
    "install",
    "session_start",
    "commerce_event",
    *(event_key("custom_event", n) for n in NAMES),
    event_key("screen_view", "Home"),
    event_key("commerce_event", "purchase"),
]


def _applied(body: bytes, stamps: bytes, input_name: str = "web") -> LogEntry:
    return LogEntry(
        input=input_name,
        workspace_id=1,
        received_ms=NOW,
        status=BatchStatus.APPLIED,
        body=body,
        event_stamps=stamps,
    )


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["custom", "screen", "first_run", "session", "commerce"]))
    data: dict[str, Any] = {}
    if draw(st.booleans()):
        data["timestamp_unixtime_ms"] = NOW - draw(
            st.integers(-2 * DAY, 40 * DAY)
        )  # some ahead of the receipt
    if kind == "custom":
        data.update(event_name=draw(st.sampled_from(NAMES)), custom_event_type="other")
        return {"event_type": "custom_event", "data": data}
    if kind == "screen":
        return {"event_type": "screen_view", "data": {**data, "screen_name": "Home"}}
    if kind == "commerce":
        action = {"action": "purchase", "products": [{"id": "p", "price": 1.0}]}
        return {"event_type": "commerce_event", "data": {**data, "product_action": action}}
    return {"event_type": "first_run" if kind == "first_run" else "session_start", "data": data}


specs = st.lists(
    st.builds(
        lambda i, key, inputs, days, keep: HistorySpec(
            f"h{i}", key, None, frozenset(inputs), days * DAY, keep
        ),
        st.integers(0, 3),
        st.sampled_from(KEYS),
        st.sets(st.sampled_from(["web", "app", "gone"]), min_size=1),
        st.integers(1, 30),
        st.integers(1, 12),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["web", "app"]), st.lists(events(), max_size=10)),
        min_size=1,
        max_size=4,
    ),
    specs,
)
def test_stamps_fold_as_the_body_does(
    batches: list[tuple[str, list[dict[str, Any]]]], chosen: list[HistorySpec]
) -> None:
    some = histories_of(chosen)
    reading = LogReading(some, INPUTS.get)
    assert reading.reads_stamps
    stamped, unstamped = [], []
    for input_name, batch in batches:
        body = json.dumps({"events": batch}).encode()
        observed = observe(body, INPUTS[input_name], NOW)
        entry = _applied(body, event_stamps(observed.events, NOW), input_name)
        stamped.append(msgspec.structs.replace(entry, body=b""))
        unstamped.append(msgspec.structs.replace(entry, event_stamps=None))
    # The stamps read straight to the histories take what the bodies' events give them,
    # and both fold as the events folded batch by batch do.
    by_stamps, by_bodies = reading.taken(stamped), reading.taken(unstamped)
    assert {k: sorted(v) for k, v in by_stamps.items()} == {
        k: sorted(v) for k, v in by_bodies.items()
    }
    one_by_one: dict[str, list[int]] = {}
    for entry in unstamped:
        one_by_one = fold_events(one_by_one, reading.events(entry), entry.input, some, NOW)
    assert fold_taken({}, by_stamps, some, NOW) == one_by_one


def test_stamps_keep_each_events_type_name_and_time_in_order() -> None:
    body = json.dumps(
        {
            "events": [
                {"event_type": "first_run", "data": {"timestamp_unixtime_ms": NOW - 5}},
                {
                    "event_type": "custom_event",
                    "data": {"event_name": "Play", "custom_event_type": "other"},
                },
                {
                    "event_type": "screen_view",
                    "data": {"screen_name": "Home", "timestamp_unixtime_ms": 7},
                },
            ]
        }
    ).encode()
    observed = observe(body, INPUTS["web"], NOW)
    assert stamped_events(event_stamps(observed.events, NOW), NOW) == [
        ("install", None, NOW - 5),
        ("custom_event", "Play", NOW),
        ("screen_view", "Home", 7),
    ]


def test_histories_with_conditions_read_the_body() -> None:
    def jazz(event: EventFact) -> bool:
        return event.attributes.get("genre") == "jazz"

    spec = HistorySpec("h", "custom_event:play", jazz, frozenset({"web"}), 30 * DAY, 5)
    reading = LogReading(histories_of([spec]), INPUTS.get)
    assert not reading.reads_stamps
    plays = [
        {
            "event_type": "custom_event",
            "data": {
                "event_name": "Play",
                "custom_event_type": "other",
                "custom_attributes": {"genre": genre},
                "timestamp_unixtime_ms": NOW - age,
            },
        }
        for genre, age in (("jazz", 5), ("rock", 3))
    ]
    body = json.dumps({"events": plays}).encode()
    entry = _applied(body, event_stamps(observe(body, INPUTS["web"], NOW).events, NOW))
    facts = reading.events(entry)
    assert [(f.attributes.get("genre"), f.timestamp_ms) for f in facts] == [
        ("jazz", NOW - 5),
        ("rock", NOW - 3),
    ]
    assert fold_taken({}, reading.taken([entry]), histories_of([spec]), NOW) == {"h": [NOW - 5]}


def test_stamps_that_do_not_read_leave_the_batch_to_its_body() -> None:
    spec = HistorySpec("h", "custom_event:play", None, frozenset({"web"}), 30 * DAY, 5)
    reading = LogReading(histories_of([spec]), INPUTS.get)
    play = {"event_name": "Play", "custom_event_type": "other", "timestamp_unixtime_ms": NOW - 9}
    body = json.dumps({"events": [{"event_type": "custom_event", "data": play}]}).encode()
    entry = _applied(body, b"\xc1 not msgpack")
    assert [(f.name, f.timestamp_ms) for f in reading.events(entry)] == [("Play", NOW - 9)]
    assert reading.events(msgspec.structs.replace(entry, body=b"")) == ()
    assert reading.taken([entry]) == {"h": [NOW - 9]}
    assert reading.taken([msgspec.structs.replace(entry, body=b"")]) == {}
