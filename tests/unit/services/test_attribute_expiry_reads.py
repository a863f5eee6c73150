"""Per-attribute expiry (RET-4) at read time: forwarding's enrichment (event batches and an
audience connection's shared attributes) and profile queries leave a value out from its
expiry instant on, with nothing swept; a workspace without rules is read as stored."""

from __future__ import annotations

from typing import Any

import msgspec

from kindred.domain.expiry import parse_rules
from kindred.domain.forwarding import AudienceConnection, EventConnection
from kindred.domain.profile import AttributeEntry, IdentityEntry, Profile, WorkspaceProfile
from kindred.domain.tenancy import AccountPolicy, Tenancy, WorkspaceDef
from kindred.ports import Delivery
from kindred.services.forwarding.rendering import Renderer
from kindred.services.forwarding.router import MembershipNote
from kindred.services.profiles.queries import ProfileQueries
from kindred.storage.memory import MemoryStore
from tests.fakes import FakeClock

DAY = 86_400_000
T0 = 1_700_000_000_000
ACCOUNT = AccountPolicy(account_id=1)
TENANCY = Tenancy(
    org_id=1,
    workspaces={
        1: WorkspaceDef(workspace_id=1, name="one", account=ACCOUNT),
        2: WorkspaceDef(workspace_id=2, name="two", account=ACCOUNT),
    },
    inputs_by_key={},
    inputs_by_name={},
    attribute_ttls={1: parse_rules({"pii_*": "1d"}, "t")},
)


def _entry(value: Any) -> AttributeEntry:
    return AttributeEntry(value=value, priority=30, source="s", ts_ms=T0)


def _stored(workspaces: tuple[int, ...] = (1, 2)) -> MemoryStore:
    attributes = {"pii_email": _entry("a@x"), "plan": _entry("pro")}
    profile = Profile(
        mpid=5,
        scope="a1",
        created_ms=T0,
        last_stored_ms=T0,
        version=1,
        user_identities={"email": IdentityEntry(value="a@x", first_seen_ms=T0, last_seen_ms=T0)},
        workspaces={
            n: WorkspaceProfile(first_seen_ms=T0, last_seen_ms=T0, attributes=attributes)
            for n in workspaces
        },
    )
    store = MemoryStore()
    with store.unit_of_work() as uow:
        uow.profiles.save(profile)
    return store


def _batch_row(workspace_id: int) -> Delivery:
    body = {"events": [{"event_type": "custom_event", "data": {"event_name": "Play"}}]}
    return Delivery(
        connection="c",
        kind="batch",
        workspace_id=workspace_id,
        created_ms=T0,
        body=msgspec.json.encode(body),
        mpid=5,
        id=1,
    )


def _forwarded(clock: FakeClock, workspace_id: int) -> dict[str, Any]:
    renderer = Renderer(_stored(), TENANCY, clock=clock)
    connection = EventConnection(name="c", input="s", output="o")
    (message,) = renderer.render(connection, _batch_row(workspace_id))
    attributes: dict[str, Any] = message["user_attributes"]
    return attributes


def test_enrichment_leaves_the_value_out_from_its_expiry_instant() -> None:
    clock = FakeClock(T0 + DAY - 1)
    assert _forwarded(clock, 1) == {"pii_email": "a@x", "plan": "pro"}
    clock.now = T0 + DAY
    assert _forwarded(clock, 1) == {"plan": "pro"}
    # Workspace 2 has no rules.
    assert _forwarded(clock, 2) == {"pii_email": "a@x", "plan": "pro"}


def test_an_audience_connection_shares_no_expired_value() -> None:
    clock = FakeClock(T0 + DAY - 1)
    renderer = Renderer(_stored((1,)), TENANCY, clock=clock)
    connection = AudienceConnection(
        name="c",
        audience_id=3,
        output="o",
        identity_types=["email"],
        shared_attributes=["pii_email", "plan"],
    )
    note = MembershipNote(audience_id=3, audience_name="gold", entered=True, at_ms=T0)
    row = Delivery(
        connection="c",
        kind="membership",
        workspace_id=1,
        created_ms=T0,
        body=msgspec.json.encode(note),
        mpid=5,
        id=2,
    )
    (message,) = renderer.render(connection, row)
    assert message["user_attributes"] == {"pii_email": "a@x", "plan": "pro"}
    clock.now = T0 + DAY
    (message,) = renderer.render(connection, row)
    assert message["user_attributes"] == {"plan": "pro"}


def test_profile_queries_leave_the_value_out() -> None:
    clock = FakeClock(T0 + DAY)
    queries = ProfileQueries(_stored(), TENANCY, clock)
    shown = queries.by_mpid(5)
    assert shown.workspaces[1].live_attributes() == {"plan": "pro"}
    assert shown.workspaces[2].live_attributes() == {"pii_email": "a@x", "plan": "pro"}
    unfiltered = ProfileQueries(_stored(), TENANCY).by_mpid(5)
    assert "pii_email" in unfiltered.workspaces[1].live_attributes()
