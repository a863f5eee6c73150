"""Quarantined batches (ING-3): web batches that could not be read were kept with their
reason; operators list them and, after a fix (a newer Kindred, a raised guardrail), send
them through ingest again. A batch that still cannot be read stays quarantined, with
today's reason."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

import msgspec

from kindred.domain.errors import InvalidBatch
from kindred.domain.tenancy import InputDef
from kindred.ports import Clock, RejectEntry, RejectReader, UnitOfWork
from kindred.services.writes.commands import Accepted, BatchOutcome
from kindred.wire.errors import as_invalid_batch
from kindred.wire.observe import observe

__all__ = ["Quarantine", "QuarantineStore", "ReplayReport"]


class QuarantineStore(RejectReader, Protocol):
    """What the quarantine reads (the rejects) and writes (a reject marked replayed)."""

    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]: ...


class ReplayReport(msgspec.Struct, kw_only=True):
    replayed: list[int] = msgspec.field(default_factory=list)
    # reject id -> why it still cannot be read
    still_invalid: dict[int, str] = msgspec.field(default_factory=dict)


class Quarantine:
    def __init__(
        self,
        store: QuarantineStore,
        apply: Callable[[Sequence[Accepted]], list[BatchOutcome]],
        inputs: Callable[[str], InputDef | None],
        clock: Clock,
    ) -> None:
        self._store = store
        self._apply = apply
        self._inputs = inputs
        self._clock = clock

    def quarantined(self, limit: int) -> list[RejectEntry]:
        """Quarantined batches, replayed ones included, newest first."""
        return self._store.list_rejects("quarantined", limit)

    def pending(self, limit: int = 10_000) -> list[RejectEntry]:
        """Quarantined batches not replayed yet, oldest first."""
        entries = self.quarantined(limit)
        return [e for e in reversed(entries) if e.replayed_ms is None]

    def replay(self, ids: Sequence[int] = ()) -> ReplayReport:
        """Replay the given quarantined batches (all pending ones when none are given)."""
        report = ReplayReport()
        wanted = set(ids)
        for entry in self.pending():
            if wanted and entry.id not in wanted:
                continue
            reason = self._replay_one(entry)
            assert entry.id is not None
            if reason is None:
                report.replayed.append(entry.id)
            else:
                report.still_invalid[entry.id] = reason
        return report

    def _replay_one(self, entry: RejectEntry) -> str | None:
        source = self._inputs(entry.input)
        if source is None:
            return f"no input named {entry.input!r} any more"
        try:
            obs = observe(entry.body, source, entry.received_ms)
        except (msgspec.DecodeError, InvalidBatch) as exc:
            return str(as_invalid_batch(exc))
        self._apply([Accepted(source, obs, entry.body)])
        assert entry.id is not None
        with self._store.unit_of_work() as uow:
            uow.rejects.mark_replayed(entry.id, self._clock.now_ms())
        return None
