"""Ingest: the handlers of accepted and refused batches.

An accepted batch is claimed by its `source_request_id` (ING-4), checked against its
input's protection, resolved to a profile and applied (`ProfileWriter`); whatever becomes
of it, it ends in the event log with its status, in the same transaction as the profile
change. A batch that fails even alone is kept with status `failed`, for replay.
"""

from __future__ import annotations

import logging

from kindred.domain.tenancy import Protection
from kindred.ports import BatchStatus, Metrics, RejectEntry, UnitOfWork
from kindred.services.forwarding.transactions import Transactions
from kindred.services.ingest.profile_writer import ProfileWriter, batch_identities
from kindred.services.writes.commands import (
    Accepted,
    BatchOutcome,
    HandlerBase,
    Prefetch,
    Refused,
    log_entry,
)

__all__ = ["BatchHandler", "RefusalHandler"]

log = logging.getLogger("kindred.ingest")


class BatchHandler(HandlerBase[Accepted, BatchOutcome]):
    def __init__(
        self,
        profiles: ProfileWriter,
        metrics: Metrics,
        transactions: Transactions,
    ) -> None:
        self._profiles = profiles
        self._metrics = metrics
        self._transactions = transactions

    def announce(self, command: Accepted, prefetch: Prefetch) -> None:
        if command.input.protection is Protection.READ_ONLY:
            return
        obs, scope = command.observation, command.input.workspace.identity_scope
        prefetch.identities += [(scope, key) for key in batch_identities(command)]
        if obs.mpid is not None:
            prefetch.mpids.append(obs.mpid)
        if obs.source_request_id:
            prefetch.requests.append((command.input.name, obs.source_request_id))

    def run(self, uow: UnitOfWork, command: Accepted) -> BatchOutcome:
        obs, source = command.observation, command.input
        if obs.source_request_id and not uow.log.claim_request(
            source.name, obs.source_request_id, obs.received_ms
        ):
            return BatchOutcome(BatchStatus.DUPLICATE)
        if source.protection is Protection.READ_ONLY:
            return _logged(uow, command, BatchStatus.READ_ONLY, "read-only input")
        decision, profiles = self._profiles.resolve(uow, command)
        if decision.action == "unresolved":
            return _logged(uow, command, BatchStatus.UNRESOLVED, "no MPID and no identity")
        if decision.action == "create" and source.protection is Protection.UPDATE_ONLY:
            return _logged(uow, command, BatchStatus.DROPPED, "unknown user, update-only input")
        mpid = decision.mpid if decision.mpid is not None else self._profiles.fresh_mpid()
        return self._profiles.apply(uow, command, decision, profiles.get(mpid), mpid)

    def failed(self, command: Accepted, error: Exception) -> BatchOutcome:
        """The batch failed even alone: keep it in the event log for replay (raises
        StoreUnavailable when even that cannot be stored)."""
        log.error("batch from %s failed; kept for replay", command.input.name, exc_info=error)
        reason = f"{type(error).__name__}: {error}"
        with self._transactions.begin() as uow:
            uow.log.append(log_entry(command, BatchStatus.FAILED, None, reason))
        return BatchOutcome(BatchStatus.FAILED)

    def committed(self, command: Accepted, result: BatchOutcome) -> None:
        name = command.input.name
        self._metrics.batch_done(name, result.status, len(command.observation.events))
        if result.notes:
            self._metrics.notes(name, [n.reason for n in result.notes])


class RefusalHandler(HandlerBase[Refused, BatchOutcome]):
    """A refused or quarantined batch is kept with its reason (ING-3)."""

    def run(self, uow: UnitOfWork, command: Refused) -> BatchOutcome:
        entry = RejectEntry(
            input=command.input_name,
            received_ms=command.received_ms,
            kind=command.kind,
            reason=command.reason,
            body=command.body,
        )
        uow.rejects.record(entry)
        return BatchOutcome(command.kind)


def _logged(uow: UnitOfWork, item: Accepted, status: str, reason: str) -> BatchOutcome:
    uow.log.append(log_entry(item, status, None, reason))
    return BatchOutcome(status)
