"""A batch read from a partition of the batch log, applied exactly once.

The worker wraps each batch it reads in `Positioned` (its partition and seq). The handler
moves the partition's stored position in the transaction that applies the batch
(`uow.log.advance_position`), so a batch read again after a crash, a lost lease or a
restart (its seq at or below the position) changes nothing; otherwise the batch goes
through the same handler as in a single process. A record that no longer makes a command
(its input gone from the config) only moves the position.
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

__all__ = ["REDELIVERED", "Positioned", "PositionedHandler"]

# The outcome of a batch its partition had applied already (never in the event log).
REDELIVERED = "redelivered"


@dataclass(frozen=True, slots=True)
class Positioned(Command[BatchOutcome]):
    partition: int
    seq: int
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
        if not uow.log.advance_position(command.partition, command.seq):
            return BatchOutcome(REDELIVERED)
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
            if not uow.log.advance_position(command.partition, command.seq):
                return BatchOutcome(REDELIVERED)
            if isinstance(inner, Accepted):
                reason = f"{type(error).__name__}: {error}"
                uow.log.append(log_entry(inner, BatchStatus.FAILED, None, reason))
        return BatchOutcome(BatchStatus.FAILED)

    def committed(self, command: Positioned, result: BatchOutcome) -> None:
        if isinstance(command.command, Accepted) and result.status != REDELIVERED:
            self._batches.committed(command.command, result)
