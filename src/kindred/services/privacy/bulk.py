"""Bulk profile deletion: many profiles, named by MPID or by identity, erased in one call
through the erasure of data subject requests (services.privacy.erasure), each in a
transaction of its own, with what was removed for each and its signed receipt (kept in that
transaction)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from kindred.domain.dsr import DsrSummary
from kindred.domain.errors import InvalidBatch, NotFound
from kindred.domain.identities import canonical_identity_type
from kindred.domain.receipts import ReceiptRecord
from kindred.domain.tenancy import Tenancy
from kindred.ports import ProfileReader
from kindred.services.privacy.erasure import Erased, Erasure, ReceiptMaker
from kindred.services.privacy.receipts import ReceiptMakers, Receipts

__all__ = ["MAX_SUBJECTS", "BulkDeletion", "Deleted", "IdentityName"]

MAX_SUBJECTS = 1000  # profiles (MPIDs or identities) per call


class IdentityName(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    value: str


class Deleted(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One subject of the call: what it named, whether a profile was found, what went."""

    mpid: str | None = None
    identity: IdentityName | None = None
    found: bool
    removed: DsrSummary = msgspec.field(default_factory=DsrSummary)
    # The signed receipt of the erasure (when a profile was found).
    receipt_id: str | None = None


class BulkDeletion:
    def __init__(
        self,
        erasure: Erasure,
        profiles: ProfileReader,
        tenancy: Tenancy,
        *,
        on_deleted: Callable[[int], None] | None = None,
        receipts: Receipts | None = None,
    ) -> None:
        self._erasure = erasure
        self._profiles = profiles
        self._tenancy = tenancy
        self._on_deleted = on_deleted
        self._receipts = receipts

    def by_mpids(self, mpids: Sequence[int]) -> list[Deleted]:
        """Erase each MPID's profile (a merged MPID stands for its survivor) with the
        profiles merged into it, in its own identity scope."""
        _check_count(len(mpids))
        done: list[Deleted] = []
        makers = self._makers()
        for mpid in mpids:
            profile = self._profiles.get_profile(mpid)
            entry = Deleted(mpid=str(mpid), found=False)
            if profile is None:
                done.append(entry)
                continue
            receipt = _when_found(makers, None, {})
            erased = self._erasure.erase(profile.scope, {}, mpid, receipt)
            done.append(self._deleted(entry, erased))
        return done

    def by_identities(self, workspace_id: int, identities: Sequence[IdentityName]) -> list[Deleted]:
        """Erase the profiles each identity is linked to in the workspace's identity scope
        (one subject per identity)."""
        _check_count(len(identities))
        workspace = self._tenancy.workspaces.get(workspace_id)
        if workspace is None:
            raise NotFound(f"no workspace {workspace_id}")
        named: list[tuple[IdentityName, str]] = []
        for n, identity in enumerate(identities):
            kind = canonical_identity_type(identity.type)
            if kind is None:
                raise InvalidBatch(
                    f"unknown identity type {identity.type!r}", f"identities[{n}].type"
                )
            if not identity.value:
                raise InvalidBatch("an identity needs a value", f"identities[{n}].value")
            named.append((identity, kind))
        done: list[Deleted] = []
        makers = self._makers()
        for identity, kind in named:
            subject = {kind: identity.value}
            receipt = _when_found(makers, workspace_id, subject)
            erased = self._erasure.erase(workspace.identity_scope, subject, None, receipt)
            done.append(self._deleted(Deleted(identity=identity, found=False), erased))
        return done

    def _makers(self) -> ReceiptMakers | None:
        """The receipts' makers of one call, the key loaded once (see `Receipts.makers`)."""
        return None if self._receipts is None else self._receipts.makers(origin="bulk")

    def _deleted(self, entry: Deleted, erased: Erased) -> Deleted:
        summary = erased.summary
        gone = summary.profiles + summary.merged_profiles
        if gone and self._on_deleted is not None:
            self._on_deleted(gone)
        entry.found = summary.profiles > 0
        entry.removed = summary
        entry.receipt_id = erased.receipt_id
        return entry


def _when_found(
    makers: ReceiptMakers | None, workspace_id: int | None, identities: dict[str, str]
) -> ReceiptMaker | None:
    """What signs the receipt of a profile erased, in the erasure's transaction (none when
    no profile was found)."""
    if makers is None:
        return None
    make = makers(workspace_id=workspace_id, identities=identities)

    def when_found(erased: Erased) -> ReceiptRecord | None:
        return make(erased) if erased.summary.profiles else None

    return when_found


def _check_count(count: int) -> None:
    if count == 0:
        raise InvalidBatch("name at least one profile", "")
    if count > MAX_SUBJECTS:
        raise InvalidBatch(f"at most {MAX_SUBJECTS} profiles per call", "")
