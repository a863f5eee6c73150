"""Erasure receipts (BEY-6): what one erasure removed from each store part and which outputs
were sent a removal, signed by the processor so that a later audit can check it offline.

Pure: the receipt's shape, the digest of a removed row (the same on every store: SHA-256
over the row's fields, each length-prefixed, so that no two rows of different content share
one), and the signed form. Signing and checking a signature are the services' (with the
processor's key); the receipt is signed as the exact bytes kept in `SignedReceipt.payload`,
so that a check never depends on encoding the receipt again.
"""

from __future__ import annotations

import hashlib

import msgspec

__all__ = [
    "PART_NAMES",
    "RESIDUE_PARTS",
    "ErasureReceipt",
    "OutputRemoval",
    "ReceiptRecord",
    "RemovedPart",
    "SignedReceipt",
    "identity_digest",
    "row_digest",
]

# Every store part a receipt accounts for, in the order it lists them (a part with nothing
# removed is listed with a count of 0: the receipt says it was looked at).
PART_NAMES = (
    "profiles",
    "merged_profiles",
    "identity_links",
    "event_log",
    "rejects",
    "audience_memberships",
    "membership_log",
    "calculated_attributes",
    "merge_ledger",
    "outbox",
    "dead_letters",
)

# The parts a verification looks into again (calculated attribute states and merged stubs
# live in the profile documents: `profiles` covers them).
RESIDUE_PARTS = (
    "profiles",
    "identity_links",
    "event_log",
    "rejects",
    "audience_memberships",
    "membership_log",
    "merge_ledger",
    "outbox",
    "dead_letters",
)

ALGORITHM = "RSA-SHA256"


def row_digest(*fields: bytes | str | int | bool | None) -> str:
    """SHA-256 (hex) of a row's fields, each as bytes with its length before it."""
    digest = hashlib.sha256()
    for field in fields:
        data = _bytes(field)
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def identity_digest(scope: str, id_type: str, value: str) -> str:
    """What a receipt names an identity by: never the identity itself."""
    return row_digest("identity", scope, id_type, value)


def _bytes(field: bytes | str | int | bool | None) -> bytes:
    if field is None:
        return b"\x00null"
    if isinstance(field, bytes | bytearray | memoryview):
        return bytes(field)
    if isinstance(field, bool):
        return b"1" if field else b"0"
    return str(field).encode()


class RemovedPart(msgspec.Struct, kw_only=True):
    """What went from one store part: how many rows, their ids (MPIDs, row ids, audience
    and attribute names: never an identity's value) and their digests, in the same order."""

    part: str
    count: int = 0
    ids: list[str] = msgspec.field(default_factory=list)
    digests: list[str] = msgspec.field(default_factory=list)

    def add(self, row_id: str, digest: str) -> None:
        self.count += 1
        self.ids.append(row_id)
        self.digests.append(digest)


class OutputRemoval(msgspec.Struct, kw_only=True):
    """The removals an erasure queued for one connection (sent through the outbox)."""

    connection: str
    kind: str
    rows: int
    audience_ids: list[int] = msgspec.field(default_factory=list)


class ErasureReceipt(msgspec.Struct, kw_only=True):
    """One erased subject (a data subject request, or one profile of a bulk deletion)."""

    receipt_id: str
    processor_domain: str
    # "dsr" (a data subject request, `request_id` its id) or "bulk" (bulk deletion).
    origin: str
    request_id: str | None = None
    workspace_id: int | None = None
    scope: str
    erased_ms: int
    # Every profile removed (live ones and stubs merged into them).
    subject_mpids: list[int] = msgspec.field(default_factory=list)
    subject_identities: list[str] = msgspec.field(default_factory=list)  # identity_digest
    parts: list[RemovedPart] = msgspec.field(default_factory=list)
    outputs: list[OutputRemoval] = msgspec.field(default_factory=list)

    def part(self, name: str) -> RemovedPart:
        for found in self.parts:
            if found.part == name:
                return found
        raise KeyError(name)


class SignedReceipt(msgspec.Struct, kw_only=True):
    """A receipt as signed: `payload` is the receipt's JSON, the bytes signed (UTF-8);
    `signature` base64 of the RSA-SHA256 (PKCS#1 v1.5) signature; `certificate` the
    processor's X.509 certificate (PEM) whose key signed it."""

    payload: str
    signature: str
    certificate: str
    certificate_sha256: str
    algorithm: str = ALGORITHM

    def receipt(self) -> ErasureReceipt:
        return msgspec.json.decode(self.payload, type=ErasureReceipt)


class ReceiptRecord(msgspec.Struct, kw_only=True):
    """A receipt as kept. `identities`: the identities the subject was named by (canonical
    type -> value, as the request or bulk deletion named them; not part of the signed
    receipt), what a verification looks for again besides the MPIDs."""

    receipt_id: str
    request_id: str | None = None
    workspace_id: int | None = None
    made_ms: int
    signed: SignedReceipt
    identities: dict[str, str] = msgspec.field(default_factory=dict)
