"""The lifetime sweep (RET-1, RET-2): deletes profiles that aged out, with their identity
links, a chunk per transaction.

Safe to run in many processes at once: each chunk claims its rows (PostgreSQL skips rows
another sweep holds; SQLite has one writer), deletes only a profile still at the version it
read (an update in between wins, and the profile lives on), and commits on its own, so a
sweep cut short loses nothing and the next run carries on where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from kindred.domain.lifetime import expired_before_ms
from kindred.domain.tenancy import Tenancy
from kindred.ports import Clock, ConcurrentUpdate, UnitsOfWork

__all__ = ["LifetimeSweep", "SweepReport"]

log = logging.getLogger("kindred.retention")

_ATTEMPTS = 5


class SweepReport(msgspec.Struct, kw_only=True):
    deleted: int = 0
    # identity scope -> profiles deleted there
    by_scope: dict[str, int] = msgspec.field(default_factory=dict)


class LifetimeSweep:
    def __init__(
        self,
        store: UnitsOfWork,
        tenancy: Tenancy,
        clock: Clock,
        *,
        chunk: int = 500,
        on_deleted: Callable[[int], None] | None = None,
    ) -> None:
        self._store = store
        self._tenancy = tenancy
        self._clock = clock
        self._chunk = chunk
        self._on_deleted = on_deleted

    def run(self) -> SweepReport:
        """Delete every profile past its lifetime as of now."""
        report = SweepReport()
        now = self._clock.now_ms()
        for scope, account in sorted(self._tenancy.accounts_by_scope().items()):
            cutoff = expired_before_ms(account, now)
            while True:
                deleted = self._chunk_with_retries(scope, cutoff)
                if deleted:
                    report.by_scope[scope] = report.by_scope.get(scope, 0) + deleted
                    report.deleted += deleted
                    if self._on_deleted is not None:
                        self._on_deleted(deleted)
                if deleted < self._chunk:
                    break
        return report

    def _chunk_with_retries(self, scope: str, cutoff: int) -> int:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return self._chunk_once(scope, cutoff)
            except ConcurrentUpdate:
                # A profile was updated (so it lives on) or taken by another sweep: the next
                # attempt reads afresh and no longer sees it as expired.
                log.debug("sweep chunk in %s collided (attempt %d)", scope, attempt)
        return 0

    def _chunk_once(self, scope: str, cutoff: int) -> int:
        with self._store.unit_of_work() as uow:
            expired = uow.profiles.expired(scope, cutoff, self._chunk)
            for profile in expired:
                uow.profiles.delete(profile)
        return len(expired)
