"""The write path assembled: the one table of the commands the group writer runs and the
handler of each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from kindred.domain.tenancy import InputDef
from kindred.ports import EventLogReader, MergeReader, Metrics, MpidSource, UnitsOfWork
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.calculated.registry import CalculatedRegistry
from kindred.services.forwarding.transactions import Transactions
from kindred.services.identity.idsync import IdentityCallHandler, ModifyHandler
from kindred.services.identity.merge_calls import AliasHandler, UnmergeHandler
from kindred.services.ingest.batches import BatchHandler, RefusalHandler
from kindred.services.ingest.positioned import Positioned, PositionedHandler
from kindred.services.ingest.profile_writer import ProfileWriter
from kindred.services.writes.commands import (
    Accepted,
    AliasCall,
    HandlerTable,
    IdentityCall,
    ModifyCall,
    Refused,
    UnmergeCall,
)
from kindred.services.writes.runner import CommandRunner

__all__ = ["WritePathStore", "write_path"]


class WritePathStore(UnitsOfWork, MergeReader, EventLogReader, Protocol):
    """What the write path needs of a store: its transactions, and the committed ledger
    and event log an un-merge reads."""


def write_path(
    store: WritePathStore,
    mpids: MpidSource,
    metrics: Metrics,
    inputs: Callable[[str], InputDef | None] = lambda _: None,
    audiences: AudienceRegistry | None = None,
    *,
    calculated: CalculatedRegistry | None = None,
    transactions: Transactions | None = None,
) -> CommandRunner:
    """The runner with every command's handler: the one table of what the writer runs.
    `inputs`: the input of a name (batches applied again); `transactions`: where the
    groups' transactions open (by default with no forwarding)."""
    transactions = transactions or Transactions(store)
    profiles = ProfileWriter(mpids, audiences, calculated)
    batches, refused = BatchHandler(profiles, metrics, transactions), RefusalHandler()
    handlers: HandlerTable = {
        Accepted: batches,
        Refused: refused,
        Positioned: PositionedHandler(batches, refused, transactions),
        IdentityCall: IdentityCallHandler(profiles, metrics),
        ModifyCall: ModifyHandler(),
        AliasCall: AliasHandler(),
        UnmergeCall: UnmergeHandler(store, profiles, inputs),
    }
    return CommandRunner(handlers, transactions, metrics)
