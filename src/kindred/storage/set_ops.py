"""What a SQL store does for the write-behind unit of work (storage.writebehind): a few
set-oriented reads and locks, and the flush of everything a transaction changed, in its
own SQL (storage.sqlite.setops, storage.postgres.setops)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from kindred.audiences.definition import Selection
from kindred.domain.dsr import DsrRequest
from kindred.domain.profile import Membership, Profile
from kindred.ports import Needles
from kindred.storage.codec import ProfileRead
from kindred.storage.erasure_sql import SqlErasure
from kindred.storage.pending_writes import PendingWrites, ScopedKey

__all__ = ["SetOps"]


class SetOps(Protocol):
    """What a SQL store does in bulk, inside its open transaction."""

    def lock_identities(self, keys: Sequence[ScopedKey]) -> None: ...

    def find_identities(self, keys: Sequence[ScopedKey]) -> dict[ScopedKey, list[int]]: ...

    def read_profiles(self, mpids: Sequence[int]) -> dict[int, ProfileRead]: ...

    def document(self, profile: Profile) -> str:
        """The profile's document in the form the store writes it."""
        ...

    def known_requests(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]: ...

    def log_position(self, partition: int) -> int:
        """The batch log partition's stored position (0: none), its row locked until
        commit where the store locks rows."""
        ...

    def claim_expired(self, scope: str, stored_before_ms: int, limit: int) -> list[Profile]:
        """Oldest first; rows another transaction holds are skipped, the rest locked."""
        ...

    def log_ids(self, mpid: int, from_ms: int, to_ms: int) -> list[int]: ...

    def aged_log(
        self, workspace_ids: Sequence[int], received_before_ms: int, limit: int
    ) -> list[tuple[int, int | None]]:
        """Oldest first; entries another transaction holds are skipped, the rest locked."""
        ...

    def delete_log(self, entry_ids: Sequence[int]) -> int: ...

    def page_profiles(
        self, scope: str, from_mpid: int, limit: int, needles: Needles | None
    ) -> list[Profile]: ...

    def claim_due(self, before_ms: int, limit: int) -> list[Profile]:
        """Profiles whose audience due time has come, earliest first; locked like
        claim_expired."""
        ...

    def apply_selection(
        self, selection: Selection, held: Membership, from_mpid: int, limit: int
    ) -> tuple[int, int | None, list[int], list[int]] | None:
        """UnitOfWork.apply_selection on the audience_members rows: (profiles covered, last
        MPID covered, MPIDs that entered, MPIDs that left); None when the audience is not
        active."""
        ...

    def remove_members(self, audience_id: int) -> list[int]:
        """Delete the audience's audience_members rows; the MPIDs that held one."""
        ...

    def audience_active(self, audience_id: int) -> bool: ...

    def definitions_version(self) -> int: ...

    def erasure(self) -> SqlErasure:
        """A subject's erasure, run at once in the open transaction."""
        ...

    def update_dsr(self, request: DsrRequest) -> bool:
        """Replace the stored request if still at `request.version - 1`, at once in the
        open transaction (its row then locked until commit where the store locks rows)."""
        ...

    def flush(self, writes: PendingWrites) -> None:
        """Apply every write; raise ConcurrentUpdate when an insert or an update finds the
        database not in the state this transaction read."""
        ...
