"""Batches of `Play` events for one customer, applied in process, and the profile they
made: what the calculated-attribute integration tests send and read."""

from __future__ import annotations

import json

from kindred.bootstrap import Container
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Profile
from kindred.services.writes.commands import Accepted
from kindred.wire.observe import observe


def send(
    container: Container,
    request_id: str,
    plays: int,
    *,
    customer: str = "race-1",
    attributes: dict[str, object] | None = None,
    input_name: str = "demo-server",
) -> None:
    """Apply a batch of `plays` Play events (and the user attributes given) for `customer`."""
    source = container.tenancy.input_named(input_name)
    assert source is not None
    events = [
        {"event_type": "custom_event", "data": {"event_name": "Play", "custom_event_type": "other"}}
        for _ in range(plays)
    ]
    batch: dict[str, object] = {
        "environment": "production",
        "source_request_id": request_id,
        "user_identities": {"customerid": customer},
        "events": events,
    }
    if attributes:
        batch["user_attributes"] = attributes
    body = json.dumps(batch).encode()
    now = container.clock.now_ms()
    outcome = container.commands.run_all([Accepted(source, observe(body, source, now), body)])
    assert outcome[0].status == "applied"


def stored(container: Container, customer: str = "race-1") -> Profile:
    scope = container.tenancy.workspaces[1].identity_scope
    found = container.store.find_profiles(scope, IdentityKey("customer_id", customer))
    profile = container.store.get_profile(found[0])
    assert profile is not None
    return profile


def plays_of(container: Container, customer: str = "race-1") -> object:
    """The stored value of the `plays` attribute (None when there is none)."""
    entry = stored(container, customer).workspaces[1].attributes.get("plays")
    return None if entry is None else entry.value
