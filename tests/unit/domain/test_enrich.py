"""Enrichment from the stored profile and the per-connection filters (ENR-1, ENR-2, ENR-4)."""

from __future__ import annotations

from typing import Any

from kindred.domain.enrich import audience_messages, enrich_batch, membership_batch
from kindred.domain.forwarding import AudienceConnection, EventConnection
from kindred.domain.observation import ConsentFact
from kindred.domain.profile import (
    AttributeEntry,
    Device,
    IdentityEntry,
    Profile,
    WorkspaceProfile,
)

PROFILE = Profile(
    mpid=42,
    scope="account",
    created_ms=1,
    last_stored_ms=2,
    ip="198.51.100.1",
    user_identities={
        "email": IdentityEntry(value="a@example.com", first_seen_ms=5, last_seen_ms=6),
        "customer_id": IdentityEntry(value="c-1", first_seen_ms=3, last_seen_ms=6),
    },
    workspaces={
        1: WorkspaceProfile(
            first_seen_ms=1,
            last_seen_ms=2,
            attributes={
                "tier": AttributeEntry(value="gold", priority=1, source="s", ts_ms=1),
                "ltv": AttributeEntry(value=12.5, priority=1, source="s", ts_ms=1),
                "old": AttributeEntry(priority=1, source="s", ts_ms=1, deleted=True),
            },
            gdpr={"marketing": ConsentFact(consented=True, timestamp_ms=9, document="v1")},
            devices={
                "d1": Device(
                    key="d1",
                    first_seen_ms=1,
                    last_seen_ms=2,
                    identities={"ios_advertising_id": "IDFA-1"},
                ),
                "d2": Device(
                    key="d2",
                    first_seen_ms=1,
                    last_seen_ms=2,
                    identities={"ios_advertising_id": "IDFA-2"},
                ),
            },
        )
    },
)


def batch(**extra: Any) -> dict[str, Any]:
    return {
        "environment": "production",
        "user_attributes": {"tier": "silver-in-batch"},
        "user_identities": {"email": "old@example.com"},
        "device_info": {"platform": "iOS"},
        "events": [
            {
                "event_type": "custom_event",
                "data": {"event_name": "Play", "custom_attributes": {"a": "1", "b": "2"}},
            },
            {"event_type": "screen_view", "data": {"screen_name": "Home"}},
        ],
        **extra,
    }


def enrich(
    connection: EventConnection, body: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    return enrich_batch(
        body or batch(),
        PROFILE,
        workspace_id=1,
        connection=connection,
        received_ms=77,
        client_ip="192.0.2.7",
        channel="native",
        key="k:1",
    )


def connection(**settings: Any) -> EventConnection:
    return EventConnection(name="c", input="i", output="o", **settings)


def test_the_profile_replaces_the_batch_user_data() -> None:
    message = enrich(connection())
    assert message is not None
    assert message["mpid"] == 42
    assert message["user_attributes"] == {"tier": "gold", "ltv": 12.5}
    assert message["user_identities"] == [
        {"identity_type": "customer_id", "identity": "c-1", "timestamp_unixtime_ms": 3},
        {"identity_type": "email", "identity": "a@example.com", "timestamp_unixtime_ms": 5},
    ]
    assert message["consent_state"] == {
        "gdpr": {
            "marketing": {
                "consented": True,
                "document": "v1",
                "timestamp_unixtime_ms": 9,
                "location": None,
                "hardware_id": None,
            }
        }
    }
    assert message["device_info"] == {"platform": "iOS"}
    assert message["ip"] == "192.0.2.7"
    assert message["timestamp_unixtime_ms"] == 77
    assert message["idempotency_key"] == "k:1"


def test_the_ip_comes_from_the_batch_then_the_profile_unless_switched_off() -> None:
    with_ip = enrich(connection(), batch(ip="203.0.113.1"))
    assert with_ip is not None
    assert with_ip["ip"] == "203.0.113.1"
    off = enrich(connection(enrich_ip=False), batch(ip="203.0.113.1"))
    assert off is not None
    assert "ip" not in off


def test_event_and_attribute_filters() -> None:
    only_screens = enrich(connection(event_types_allow=["screen_view"]))
    assert only_screens is not None
    assert [e["event_type"] for e in only_screens["events"]] == ["screen_view"]
    no_play = enrich(connection(event_names_block=["Play"]))
    assert no_play is not None
    assert len(no_play["events"]) == 1
    keys = enrich(connection(attributes_allow=["a", "tier"]))
    assert keys is not None
    assert keys["events"][0]["data"]["custom_attributes"] == {"a": "1"}
    assert keys["user_attributes"] == {"tier": "gold"}
    assert enrich(connection(event_names_allow=["Nothing"])) is None


def test_the_consent_gate() -> None:
    assert enrich(connection(consent_purpose="Marketing")) is not None
    assert enrich(connection(consent_purpose="analytics")) is None


def test_audience_messages_one_per_accepted_identity() -> None:
    audience = AudienceConnection(
        name="a", audience_id=3, output="o", identity_types=["ios_advertising_id", "mobile_number"]
    )
    messages = audience_messages(
        PROFILE, audience, audience_id=3, audience_name="Gold", entered=False, at_ms=5, key="a:9"
    )
    assert [(m["identity_type"], m["identity"], m["action"]) for m in messages] == [
        ("ios_advertising_id", "IDFA-1", "delete"),
        ("ios_advertising_id", "IDFA-2", "delete"),
    ]
    assert [m["idempotency_key"] for m in messages] == ["a:9/0", "a:9/1"]
    assert all("user_attributes" not in m for m in messages)
    shared = AudienceConnection(
        name="a", audience_id=3, output="o", identity_types=["email"], shared_attributes=["ltv"]
    )
    (message,) = audience_messages(
        PROFILE, shared, audience_id=3, audience_name="Gold", entered=True, at_ms=5, key="a:9"
    )
    assert message["user_attributes"] == {"ltv": 12.5}
    assert message["mpid"] == "42"


def test_a_membership_change_as_an_ordinary_event() -> None:
    body = membership_batch(3, "Gold", entered=True, at_ms=5)
    message = enrich(connection(), body)
    assert message is not None
    assert message["events"][0]["data"]["event_name"] == "audience_entered"
    assert message["events"][0]["data"]["custom_attributes"] == {
        "audience_id": "3",
        "audience_name": "Gold",
    }
