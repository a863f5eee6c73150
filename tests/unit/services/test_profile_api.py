"""Profile API reads (API-2, API-3): the workspace's view, field selection, access, lifetime."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

import msgspec
import pytest

from kindred.domain.credentials import ApiCredential
from kindred.domain.errors import AuthRejected, InvalidBatch, NotFound
from kindred.domain.identities import IdentityKey
from kindred.domain.lifetime import DAY_MS
from kindred.domain.profile import (
    AttributeEntry,
    Attribution,
    Device,
    IdentityEntry,
    Membership,
    Profile,
    WorkspaceProfile,
)
from kindred.domain.tenancy import AccountPolicy, IdentityPolicy, Tenancy, WorkspaceDef
from kindred.services.profiles.profile_api import ProfileApiService, project_profile
from kindred.storage.memory import MemoryStore
from kindred.wire.profile_api import PROFILE_FIELDS, ResolveIdentity, ResolveRequest
from tests.fakes import FakeClock

ACCOUNT = AccountPolicy(account_id=5, profile_lifetime_days=90)
WS = WorkspaceDef(workspace_id=7, name="Web", account=ACCOUNT)
OTHER_WS = WorkspaceDef(workspace_id=8, name="App", account=ACCOUNT)
TENANCY = Tenancy(org_id=3, workspaces={7: WS, 8: OTHER_WS}, inputs_by_key={}, inputs_by_name={})
CREDENTIAL = ApiCredential(client_id="c", secret_hash="plain$s", workspaces=frozenset({7, 8}))
PATH = (3, 5, 7)
NOW = 1_700_000_000_000
MPID = 9_080_350_317_581_165_123  # above 2**53: a float would round it


def ws_profile() -> WorkspaceProfile:
    def attr(value: object, **extra: object) -> AttributeEntry:
        return AttributeEntry(value=value, priority=30, source="web", ts_ms=1, **extra)  # type: ignore[arg-type]

    android = Device(
        key="d1",
        first_seen_ms=1,
        last_seen_ms=5,
        platform="Android",
        identities={
            "android_uuid": "8789c459016a94b0",
            "android_advertising_id": "481c8a31",
            "push_token": "gcm-1",
            "device_application_stamp": "das-1",
        },
        attribution=Attribution(publisher="ads", campaign="spring", ts_ms=4),
    )
    iphone = Device(
        key="d2",
        first_seen_ms=1,
        last_seen_ms=3,
        platform="iOS",
        identities={"ios_idfv": "IDFV-1", "push_token": "apns-1"},
        attribution=Attribution(ts_ms=9, deleted=True),
    )
    return WorkspaceProfile(
        first_seen_ms=1,
        last_seen_ms=5,
        attributes={
            "$City": attr("New York"),
            "ltv": attr(342.1),
            "churn_risk_score": attr(4),
            "newsletter": attr(True),
            "ml_product_recs": attr(["123849", 294933]),
            "tag": attr(None),
            "gone": attr("x", deleted=True),
        },
        devices={"d1": android, "d2": iphone},
    )


def profile(**changes: object) -> Profile:
    base = Profile(
        mpid=MPID,
        scope=WS.identity_scope,
        created_ms=NOW - DAY_MS,
        last_stored_ms=NOW - 1_000,
        limit_ad_tracking=None,
        version=1,
        user_identities={
            "email": IdentityEntry(value="a@example.com", first_seen_ms=1, last_seen_ms=1),
            "customer_id": IdentityEntry(value="C-1", first_seen_ms=1, last_seen_ms=1),
        },
        workspaces={7: ws_profile()},
        memberships={
            17918: Membership(audience_id=17918, name="Decor Remarketing", since_ms=1),
            17802: Membership(audience_id=17802, name="CA test", since_ms=1, expires_ms=NOW),
        },
    )
    return msgspec.structs.replace(base, **changes)


def as_json(fields: Collection[str], ws: int = 7) -> dict[str, Any]:
    encoded = msgspec.json.encode(project_profile(profile(), ws, fields))
    return cast(dict[str, Any], msgspec.json.decode(encoded))


def test_every_field_has_the_public_shape() -> None:
    body = as_json(PROFILE_FIELDS)
    assert body == {
        "mpid": MPID,
        "created_timestamp_ms": NOW - DAY_MS,
        "last_stored_timestamp_ms": NOW - 1_000,
        "is_opted_out": False,
        "limit_ad_tracking": None,
        "device_identities": [
            {"type": "google_advertising_id", "encoding": "none", "value": "481c8a31"},
            {"type": "android_id", "encoding": "none", "value": "8789c459016a94b0"},
            {"type": "unknown", "encoding": "none", "value": "das-1"},
            {"type": "google_cloud_messaging_token", "encoding": "none", "value": "gcm-1"},
            {"type": "ios_vendor_id", "encoding": "none", "value": "IDFV-1"},
            {"type": "apple_push_notification_token", "encoding": "none", "value": "apns-1"},
        ],
        "user_identities": [
            {"type": "customer_id", "encoding": "none", "value": "C-1"},
            {"type": "email", "encoding": "none", "value": "a@example.com"},
        ],
        "account_user_attributes": None,
        "user_attributes": {
            "$city": "New York",
            "ltv": "342.1",
            "churn_risk_score": "4",
            "newsletter": "true",
            "ml_product_recs": ["123849", "294933"],
            "tag": None,
        },
        "audience_memberships": [
            {"audience_id": 17802, "audience_name": "CA test", "expiration_timestamp_ms": NOW},
            {
                "audience_id": 17918,
                "audience_name": "Decor Remarketing",
                "expiration_timestamp_ms": None,
            },
        ],
        "attribution": [{"publisher": "ads", "campaign": "spring", "timestamp_ms": 4}],
    }


def test_the_mpid_is_written_exactly() -> None:
    encoded = msgspec.json.encode(project_profile(profile(), 7, ["user_identities"]))
    assert f'"mpid":{MPID},'.encode() in encoded


@pytest.mark.parametrize("field", PROFILE_FIELDS)
def test_only_the_fields_asked_for_are_returned(field: str) -> None:
    body = as_json([field])
    base = {"mpid", "created_timestamp_ms", "last_stored_timestamp_ms", "is_opted_out"}
    extra = {"account_user_attributes"} if field == "user_attributes" else set()
    assert set(body) == base | {"limit_ad_tracking", field} | extra


def test_account_level_attributes_are_shown_in_every_workspace_of_the_account() -> None:
    """PRF-4: what inputs with `account_attributes` wrote, removed ones left out, reserved
    keys as the Profile API spells them; the workspace's own attributes apart."""

    def entry(value: object, **extra: object) -> AttributeEntry:
        return AttributeEntry(value=value, priority=50, source="crm", ts_ms=1, **extra)  # type: ignore[arg-type]

    held = profile(
        account_attributes={
            "plan": entry("pro"),
            "seats": entry(12),
            "$Country": entry("FR"),
            "old": entry("x", deleted=True),
        }
    )
    for ws in (7, 8):
        encoded = msgspec.json.encode(project_profile(held, ws, ["user_attributes"]))
        body = msgspec.json.decode(encoded)
        assert body["account_user_attributes"] == {"plan": "pro", "seats": "12", "$country": "FR"}
    assert "plan" not in as_json(["user_attributes"])["user_attributes"]


def test_a_workspace_without_data_gives_empty_parts() -> None:
    body = as_json(PROFILE_FIELDS, ws=8)
    assert body["user_attributes"] == {}
    assert body["device_identities"] == []
    assert body["attribution"] == []
    assert len(body["user_identities"]) == 2  # identities belong to the identity scope


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    with store.unit_of_work() as uow:
        uow.profiles.save(profile())
        uow.identities.link(WS.identity_scope, MPID, [IdentityKey("customer_id", "C-1")])
    return store


@pytest.fixture
def service(store: MemoryStore, clock: FakeClock) -> ProfileApiService:
    return ProfileApiService(store, TENANCY, clock)


def resolve_request(id_type: str = "customer_id", value: str = "C-1") -> ResolveRequest:
    return ResolveRequest("production", ResolveIdentity(id_type, value))


def test_reads_by_mpid_and_by_immutable_identity(service: ProfileApiService) -> None:
    assert service.by_mpid(CREDENTIAL, PATH, MPID, ["user_identities"]).mpid == MPID
    assert service.resolve(CREDENTIAL, PATH, resolve_request(), []).mpid == MPID
    # The SDKs' spelling of the identity type is the same type.
    assert service.resolve(CREDENTIAL, PATH, resolve_request("customerid"), []).mpid == MPID


def test_a_workspace_the_credential_does_not_cover_is_forbidden(
    service: ProfileApiService,
) -> None:
    narrow = msgspec.structs.replace(CREDENTIAL, workspaces=frozenset({8}))
    with pytest.raises(AuthRejected, match="workspace 7"):
        service.by_mpid(narrow, PATH, MPID, [])


@pytest.mark.parametrize("path", [(4, 5, 7), (3, 6, 7)])
def test_a_workspace_under_another_org_or_account_is_not_found(
    service: ProfileApiService, path: tuple[int, int, int]
) -> None:
    with pytest.raises(NotFound, match="no workspace 7"):
        service.by_mpid(CREDENTIAL, path, MPID, [])


def test_unknown_profiles_are_not_found(service: ProfileApiService) -> None:
    with pytest.raises(NotFound, match="no profile"):
        service.by_mpid(CREDENTIAL, PATH, 12345, [])
    with pytest.raises(NotFound, match="no profile"):
        service.resolve(CREDENTIAL, PATH, resolve_request(value="C-2"), [])


def test_a_profile_of_another_identity_scope_is_not_found(
    store: MemoryStore, clock: FakeClock
) -> None:
    split = AccountPolicy(account_id=5, identity_scope="workspace")
    tenancy = Tenancy(
        org_id=3,
        workspaces={7: WorkspaceDef(workspace_id=7, name="Web", account=split)},
        inputs_by_key={},
        inputs_by_name={},
    )
    with pytest.raises(NotFound):
        ProfileApiService(store, tenancy, clock).by_mpid(CREDENTIAL, PATH, MPID, [])


def test_profiles_past_their_lifetime_are_not_served(
    service: ProfileApiService, clock: FakeClock
) -> None:
    clock.advance(90 * DAY_MS - 1_000)  # exactly the lifetime since the last update
    assert service.by_mpid(CREDENTIAL, PATH, MPID, []).mpid == MPID
    clock.advance(1)
    with pytest.raises(NotFound, match="expired"):
        service.by_mpid(CREDENTIAL, PATH, MPID, [])
    with pytest.raises(NotFound):
        service.resolve(CREDENTIAL, PATH, resolve_request(), [])


def test_resolve_takes_only_the_immutable_identity(service: ProfileApiService) -> None:
    with pytest.raises(InvalidBatch, match="not the account's immutable identity"):
        service.resolve(CREDENTIAL, PATH, resolve_request("email", "a@example.com"), [])


def test_resolve_needs_an_immutable_identity_configured(
    store: MemoryStore, clock: FakeClock
) -> None:
    account = AccountPolicy(account_id=5, identity=IdentityPolicy(immutable=None))
    tenancy = Tenancy(
        org_id=3,
        workspaces={7: WorkspaceDef(workspace_id=7, name="Web", account=account)},
        inputs_by_key={},
        inputs_by_name={},
    )
    with pytest.raises(InvalidBatch, match="no immutable identity"):
        ProfileApiService(store, tenancy, clock).resolve(CREDENTIAL, PATH, resolve_request(), [])


def test_a_merged_mpid_reads_as_its_survivor(
    store: MemoryStore, service: ProfileApiService
) -> None:
    stub = Profile(
        mpid=77,
        scope=WS.identity_scope,
        created_ms=NOW,
        last_stored_ms=NOW,
        merged_into=MPID,
        version=1,
    )
    with store.unit_of_work() as uow:
        uow.profiles.save(stub)
    assert service.by_mpid(CREDENTIAL, PATH, 77, ["user_identities"]).mpid == MPID
