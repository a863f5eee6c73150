"""What the store contract tests share: sample profiles and entries, and checks of
what a store gives back."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import msgspec

from kindred.domain.identities import IdentityKey
from kindred.domain.observation import ConsentFact
from kindred.domain.profile import (
    AttributeEntry,
    Attribution,
    Device,
    IdentityEntry,
    Membership,
    Profile,
    WorkspaceProfile,
)
from kindred.domain.receipts import ReceiptRecord, SignedReceipt
from kindred.ports import (
    BatchStatus,
    LogEntry,
    RejectEntry,
    Store,
    UnitOfWork,
)

__all__: list[str] = []


SCOPE = "acme"


EMAIL = IdentityKey("email", "ada@example.com")


CUSTOMER = IdentityKey("customer_id", "c-1")


IDFV = IdentityKey("ios_idfv", "6F9619FF-8B86-D011-B42D-00CF4FC964FF")


# MPIDs are signed 64-bit: both ends, and values a float (or a JSON reader using one) would round.
EDGE_MPIDS = (-(2**63), -1, 1, 2**53 + 1, 2**63 - 1)


BIG_A = 2**62 + 7


BIG_B = -(2**63) + 3


# Long enough for the other thread to reach the point where it must wait, were it not blocked.
SETTLE_S = 0.2


def rich_profile(mpid: int, *, version: int = 1) -> Profile:
    """A profile using every part of the aggregate, including a tombstoned attribute."""
    device = Device(
        key="das-1",
        first_seen_ms=1_000,
        last_seen_ms=2_000,
        platform="iOS",
        info={"model": "iPhone15,2", "screen": [1179, 2556], "jailbroken": False, "dpi": 460.5},
        identities={"ios_idfv": IDFV.value, "push_token": "tok"},
        att_status="authorized",
        att_ts_ms=1_500,
        attribution=Attribution(publisher="ads", campaign="spring", ts_ms=1_100),
    )
    workspace = WorkspaceProfile(
        first_seen_ms=1_000,
        last_seen_ms=2_000,
        attributes={
            "plan": AttributeEntry(value="gold", priority=2, source="web", ts_ms=1_000),
            # A float that JSON readers keeping numbers as decimals would turn into an int.
            "ltv": AttributeEntry(value=1.2345678901234567e19, priority=1, source="s", ts_ms=1),
            "tags": AttributeEntry(value=["a", 1, 2.5, True], priority=1, source="s", ts_ms=9),
            "vip": AttributeEntry(priority=1, source="ios", ts_ms=1_002),  # a tag: no value
            "old": AttributeEntry(priority=1, source="web", ts_ms=1_900, deleted=True),
            "name": AttributeEntry(value="Zoë \u2603 \U0001f600", priority=3, source="x", ts_ms=5),
        },
        gdpr={"marketing": ConsentFact(consented=True, timestamp_ms=1_200, document="v2")},
        ccpa=ConsentFact(consented=False, timestamp_ms=1_300, location="CA"),
        devices={device.key: device},
    )
    return Profile(
        mpid=mpid,
        scope=SCOPE,
        created_ms=1_000,
        last_stored_ms=2_000,
        is_opted_out=True,
        opt_out_ts_ms=1_700,
        limit_ad_tracking=False,
        ip="203.0.113.9",
        user_identities={
            "email": IdentityEntry(value=EMAIL.value, first_seen_ms=1, last_seen_ms=2)
        },
        workspaces={7: workspace, -3: WorkspaceProfile(first_seen_ms=5, last_seen_ms=6)},
        memberships={
            17802: Membership(audience_id=17802, name="Décor fans", since_ms=1_800),
            9: Membership(audience_id=9, name="Trial", since_ms=1_900, expires_ms=9_000),
        },
        recent_messages=bytes(range(256)),
        version=version,
    )


_CANONICAL = msgspec.json.Encoder(order="sorted")


def assert_same(loaded: Profile | None, profile: Profile) -> None:
    """Equal, and equal in JSON too: `==` alone takes 1e20 and 10**20 for the same value."""
    assert loaded == profile
    assert canonical(loaded) == canonical(profile)


def canonical(value: object) -> bytes:
    # PostgreSQL's jsonb numbers have no negative zero: -0.0 is kept as 0.0, the same number.
    return _NEGATIVE_ZERO.sub(b"0.0", _CANONICAL.encode(msgspec.to_builtins(value, str_keys=True)))


_NEGATIVE_ZERO = re.compile(rb"(?<![\w.])-0\.0(?![\w.])")


def save(store: Store, *profiles: Profile) -> None:
    with store.unit_of_work() as uow:
        for profile in profiles:
            uow.profiles.save(profile)


def next_version(profile: Profile, **changes: object) -> Profile:
    return msgspec.structs.replace(profile, version=profile.version + 1, **changes)


def log_entry(mpid: int | None, received_ms: int, **changes: object) -> LogEntry:
    entry = LogEntry(
        input="web",
        workspace_id=7,
        received_ms=received_ms,
        status=BatchStatus.APPLIED,
        body=b'{"events":[]}\x00\xff',
        mpid=mpid,
        source_request_id=f"req-{received_ms}",
    )
    return msgspec.structs.replace(entry, **changes)


def reject(kind: str, received_ms: int, **changes: object) -> RejectEntry:
    entry = RejectEntry(
        input="web", received_ms=received_ms, kind=kind, reason="bad", body=b"\x00{"
    )
    return msgspec.structs.replace(entry, **changes)


def assert_waits(future: Future[Any]) -> None:
    """`future` runs a second transaction that must wait for the one the caller holds open."""
    time.sleep(SETTLE_S)
    assert not future.done(), "the second transaction did not wait for the first"


class Boom(Exception):
    pass


def run(store: Store, work: Callable[[UnitOfWork], object]) -> None:
    with store.unit_of_work() as uow:
        work(uow)


# A stored erasure receipt as the contract tests save and read it back (the store does not
# check its signature).
def receipt_record(
    receipt_id: str, made_ms: int = 5, workspace_id: int | None = 1
) -> ReceiptRecord:
    signed = SignedReceipt(
        payload=f'{{"receipt_id":"{receipt_id}"}}',
        signature="c2ln",
        certificate="-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
        certificate_sha256="ab" * 32,
    )
    return ReceiptRecord(
        receipt_id=receipt_id,
        request_id=f"req-{receipt_id}",
        workspace_id=workspace_id,
        made_ms=made_ms,
        signed=signed,
        identities={"email": "ada@example.com"},
    )
