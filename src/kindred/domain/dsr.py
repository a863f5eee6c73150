"""Data subject requests (RET-3): access, portability and erasure of one person's data, as
OpenDSR v3 names them. Pure: the request as kept, its statuses, and the rules of time.

A request is made by a workspace's input, about a subject of that workspace's identity
scope, named by identities (in the types OpenDSR lists) or by an MPID alone. An erasure
waits (cancellable) for its waiting period; access and portability are done at the next
run. Every change of a stored request raises its `version`: stores update a request only
from the version read (so two processes never both start one).
"""

from __future__ import annotations

import msgspec

__all__ = [
    "DSR_IDENTITY_TYPES",
    "REQUEST_TYPES",
    "DsrRequest",
    "DsrStatus",
    "DsrSummary",
    "due_ms",
    "subject_key",
]

DAY_MS = 86_400_000

REQUEST_TYPES = ("access", "portability", "erasure")
REGULATIONS = ("gdpr", "ccpa")


class DsrStatus:
    """A request's `request_status` (OpenDSR's four, and `failed` when processing raised)."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"

    OPEN = (PENDING, IN_PROGRESS)


# OpenDSR identity type -> Kindred's canonical identity type. The top-level types of v3's
# `subject_identities`, then those of the `opendsr.mparticle.com` extension (`mpid` apart).
DSR_IDENTITY_TYPES: dict[str, str] = {
    "controller_customer_id": "customer_id",
    "email": "email",
    "android_advertising_id": "android_advertising_id",
    "android_id": "android_uuid",
    "fire_advertising_id": "fire_advertising_id",
    "ios_advertising_id": "ios_advertising_id",
    "ios_vendor_id": "ios_idfv",
    "microsoft_advertising_id": "microsoft_advertising_id",
    "microsoft_publisher_id": "microsoft_publisher_id",
    "roku_advertising_id": "roku_advertising_id",
    "roku_publisher_id": "roku_publisher_id",
    "roku_publishing_id": "roku_publisher_id",
    "other": "other",
    **{f"other{n}": f"other_id_{n}" for n in range(2, 11)},
    "mobile_number": "mobile_number",
    "phone_number_2": "phone_number_2",
    "phone_number_3": "phone_number_3",
}


class DsrSummary(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What processing found or removed, by store part, in counts (kept with the request;
    the signed receipt, `domain.receipts`, has the ids and digests of the rows)."""

    profiles: int = 0
    merged_profiles: int = 0
    identity_links: int = 0
    events: int = 0
    rejects: int = 0
    memberships: int = 0
    membership_log: int = 0
    merges: int = 0
    outbox: int = 0
    dead_letters: int = 0


class ErasureMessage(msgspec.Struct, frozen=True, kw_only=True):
    """An erasure message queued for an output that accepts erasures (RET-3): the
    connection it goes over, and the outbox `source` its row (or dead letter) carries."""

    output: str
    connection: str
    source: str


class DsrRequest(msgspec.Struct, kw_only=True):
    """One data subject request as kept. `request_id` is the caller's subject_request_id
    (a UUID), unique within the workspace (`controller_id`)."""

    workspace_id: int
    request_id: str
    input: str
    scope: str
    regulation: str
    request_type: str
    # The subject: canonical identity type -> value, or an MPID alone.
    identities: dict[str, str] = msgspec.field(default_factory=dict)
    mpid: int | None = None
    submitted_ms: int
    received_ms: int
    # When processing may start (an erasure's waiting period ends).
    due_ms: int
    status: str = DsrStatus.PENDING
    status_ms: int = 0
    group_id: str | None = None
    callback_urls: list[str] = msgspec.field(default_factory=list)
    api_version: str = "3.0"
    skip_waiting_period: bool = False
    # The request body as received (OpenDSR's `encoded_request` is it in base64).
    raw: bytes = b""
    completed_ms: int | None = None
    # Access and portability: whether anything matched, and until when results are kept.
    matched: bool | None = None
    results_until_ms: int | None = None
    results_dropped_ms: int | None = None
    failure: str | None = None
    summary: DsrSummary | None = None
    # A completed erasure's signed receipt (`domain.receipts.ReceiptRecord.receipt_id`).
    receipt_id: str | None = None
    # A completed erasure's messages to outputs that accept erasures.
    erasure_messages: list[ErasureMessage] = msgspec.field(default_factory=list)
    version: int = 1

    @property
    def subject_key(self) -> str:
        return subject_key(self.identities, self.mpid)

    @property
    def is_open(self) -> bool:
        return self.status in DsrStatus.OPEN


def subject_key(identities: dict[str, str], mpid: int | None) -> str:
    """One text per subject, the same however the identities were ordered: two open
    requests of one type about the same subject conflict (409)."""
    if mpid is not None:
        return f"mpid={mpid}"
    return "&".join(f"{t}={v}" for t, v in sorted(identities.items()))


def due_ms(
    request_type: str, received_ms: int, *, waiting_ms: int, skip_waiting_ms: int, skip: bool
) -> int:
    """When a request may be processed: an erasure after its waiting period (the shorter
    one when the caller asked to skip it), access and portability at once."""
    if request_type != "erasure":
        return received_ms
    return received_ms + (skip_waiting_ms if skip else waiting_ms)
