"""A batch read from a partition of the batch log, applied exactly once and in order.

The worker wraps each batch it reads in `Positioned`: its partition, its seq and the seq
of the partition's record before it. The handler moves the partition's stored position
from that record to this one in the transaction that applies the batch
(`uow.log.position`, `uow.log.move_position`), so a batch read again after a crash, a
lost lease or a restart (its seq at or below the position) changes nothing, and one whose
predecessor is not applied yet (the writer ran a later group first) waits to be read
again; otherwise the batch goes through the same handler as in a single process. A
record that no longer makes a command (its input gone from the config) only moves the
position.
"""

from __future__ import annotations

from dataclasses import dataclass

from kindred.ports import BatchStatus, UnitOfWork
from kindred.services.forwarding.transactions import Transactions
from kindred.services.ingest.batches import BatchHandler, RefusalHandler
from kindred.services.writes.commands import (
    Accepted,
    BatchOutcome,
    Command,
    HandlerBase,
    Prefetch,
    Refused,
    log_entry,
)

__all__ = ["OUT_OF_ORDER", "REDELIVERED", "Positioned", "PositionedHandler"]

# The outcome of a batch its partition had applied already (never in the event log).
REDELIVERED = "redelivered"
# The outcome of a batch whose partition has not applied the record before it: nothing
# done; its reader reads the partition again from the stored position.
OUT_OF_ORDER = "out_of_order"
_UNAPPLIED = (REDELIVERED, OUT_OF_ORDER)


@dataclass(frozen=True, slots=True)
class Positioned(Command[BatchOutcome]):
    partition: int
    seq: int
    # The seq of the partition's record before this one as read (the position the
    # partition must be at for this one to be applied).
    after: int
    command: Accepted | Refused | None


class PositionedHandler(HandlerBase[Positioned, BatchOutcome]):
    def __init__(
        self, batches: BatchHandler, refused: RefusalHandler, transactions: Transactions
    ) -> None:
        self._batches = batches
        self._refused = refused
        self._transactions = transactions

    def announce(self, command: Positioned, prefetch: Prefetch) -> None:
        if isinstance(command.command, Accepted):
            self._batches.announce(command.command, prefetch)

    def run(self, uow: UnitOfWork, command: Positioned) -> BatchOutcome:
        moved = _move(uow, command)
        if moved is not None:
            return moved
        inner = command.command
        if isinstance(inner, Accepted):
            return self._batches.run(uow, inner)
        if isinstance(inner, Refused):
            return self._refused.run(uow, inner)
        return BatchOutcome(BatchStatus.DROPPED)

    def failed(self, command: Positioned, error: Exception) -> BatchOutcome:
        """The batch failed even alone: kept in the event log for replay, as a single
        process keeps it, with the position moved past it in the same transaction."""
        inner = command.command
        with self._transactions.begin() as uow:
            moved = _move(uow, command)
            if moved is not None:
                return moved
            if isinstance(inner, Accepted):
                reason = f"{type(error).__name__}: {error}"
                uow.log.append(log_entry(inner, BatchStatus.FAILED, None, reason))
        return BatchOutcome(BatchStatus.FAILED)

    def committed(self, command: Positioned, result: BatchOutcome) -> None:
        if isinstance(command.command, Accepted) and result.status not in _UNAPPLIED:
            self._batches.committed(command.command, result)


def _move(uow: UnitOfWork, command: Positioned) -> BatchOutcome | None:
    """Move the partition's position from the record before this one to this one; the
    outcome instead when it cannot: applied already, or the record before it not yet
    applied (the writer ran a later group first; the reader reads again from the
    position stored, so each partition is applied in order whatever the writer does)."""
    stored = uow.log.position(command.partition)
    if stored >= command.seq:
        return BatchOutcome(REDELIVERED)
    if stored != command.after:
        return BatchOutcome(OUT_OF_ORDER)
    uow.log.move_position(command.partition, command.seq)
    return None
