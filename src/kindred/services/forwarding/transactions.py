"""Where the services open their write transactions, and the forwarding step each one
ends with: the outbox rows of what it changed, committed with the change (ENR-3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from kindred.domain.profile import Profile
from kindred.ports import (
    Delivery,
    UnitOfWork,
    UnitsOfWork,
)
from kindred.services.forwarding.router import Router

__all__ = ["Transactions"]


class Transactions:
    """Where the services open their write transactions: before each one commits, the
    outbox rows of what it changed (`UnitOfWork.recorded`: the batches it logged, the
    membership changes it appended, whichever call made them) are written in it, so that
    every delivery commits with the change that caused it (ENR-3); then the caller's last
    step, if it gives one (an erasure's receipt). Without a router (no forwarding wired,
    as in some tests) nothing is forwarded."""

    def __init__(self, store: UnitsOfWork, router: Router | None = None) -> None:
        self._store = store
        self._router = router

    @contextmanager
    def begin(
        self,
        erased: Mapping[int, Profile] | None = None,
        queued: list[Delivery] | None = None,
        *,
        erasure_id: str | None = None,
        erased_ms: int = 0,
        before_commit: Callable[[UnitOfWork], None] | None = None,
    ) -> Iterator[UnitOfWork]:
        """`erased`: profiles the transaction erases, as they were (filled in while it
        runs): their exits carry the identities an audience output needs to remove them,
        as nothing of them is left to read when the rows are sent. `queued`: given, it is
        told the outbox rows written (an erasure's receipt lists them). `erasure_id`: the
        transaction erases a data subject (not an age-out) at `erased_ms`: outputs that
        accept erasures are sent an erasure message. `before_commit`: the last step, run
        in the transaction once the forwarding step has written its rows (an erasure keeps
        its receipt there, so that both commit or neither does); what it raises rolls the
        whole transaction back."""
        with self._store.unit_of_work() as uow:
            yield uow
            self.write_outbox(uow, erased, queued, erasure_id=erasure_id, erased_ms=erased_ms)
            if before_commit is not None:
                before_commit(uow)

    def write_outbox(
        self,
        uow: UnitOfWork,
        erased: Mapping[int, Profile] | None = None,
        queued: list[Delivery] | None = None,
        *,
        erasure_id: str | None = None,
        erased_ms: int = 0,
    ) -> None:
        """The forwarding step: one outbox row per matching connection for each batch
        logged as applied (or read-only) and each membership change, in order; then an
        erasure's messages."""
        if self._router is None:
            return
        recorded = uow.recorded()
        if not recorded.log and not recorded.memberships and not (erasure_id and erased):
            return
        version = uow.definitions_version()
        rows = [row for entry in recorded.log for row in self._router.for_batch(entry, version)]
        rows += self._router.for_memberships(recorded.memberships, version, erased or {})
        if erasure_id is not None and erased:
            rows += self._router.for_erasure(
                erased, version, erasure_id=erasure_id, at_ms=erased_ms
            )
        if rows:
            uow.outbox.enqueue(rows)
            if queued is not None:
                queued.extend(rows)
