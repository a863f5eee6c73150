"""The handlers of aliases and un-merges (IDS-5, IDS-6): an alias folds one profile into
another and moves its events of a time range; an un-merge restores both profiles of a
ledger entry and applies the batches logged since the merge again, each to the profile it
resolves to now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from kindred.domain.errors import InvalidBatch, NotFound
from kindred.domain.profile import Profile
from kindred.domain.tenancy import InputDef
from kindred.ports import BatchStatus, EventLogReader, LogEntry, MergeReader, UnitOfWork
from kindred.services.ingest.profile_writer import ProfileWriter
from kindred.services.merges import check_alias, follow, merge_into, restore
from kindred.services.writes.commands import (
    Accepted,
    AliasCall,
    AliasOutcome,
    HandlerBase,
    UnmergeCall,
    UnmergeOutcome,
)
from kindred.wire.observe import observe

__all__ = ["AliasHandler", "UnmergeHandler"]

_REFUSALS: tuple[type[Exception], ...] = (InvalidBatch, NotFound)
# The batches an un-merge looks at: the survivor's newest, at most this many.
_REPLAY_LIMIT = 100_000


class AliasHandler(HandlerBase[AliasCall, AliasOutcome]):
    refusals = _REFUSALS

    def run(self, uow: UnitOfWork, command: AliasCall) -> AliasOutcome:
        call = command
        loaded = uow.profiles.load([call.source, call.destination])
        # A profile of another identity scope is answered as an unknown MPID (SEC-1): the
        # answer tells nothing of other tenants' profiles.
        source, destination = (
            _within(call.scope, follow(uow.profiles, loaded.get(mpid)))
            for mpid in (call.source, call.destination)
        )
        source, destination = check_alias(source, destination, call.start_ms, call.end_ms)
        moved = uow.log.ids(source.mpid, call.start_ms, call.end_ms)
        survivor = merge_into(
            uow,
            destination,
            source,
            rule=call.rule,
            now_ms=call.received_ms,
            max_merged=call.max_merged,
            moved_log_ids=moved,
            detail=f"events {call.start_ms}..{call.end_ms}",
        )
        return AliasOutcome(survivor.mpid, len(moved))


def _within(scope: str, profile: Profile | None) -> Profile | None:
    return profile if profile is not None and profile.scope == scope else None


class _History(MergeReader, EventLogReader, Protocol):
    """The committed ledger and event log an un-merge reads."""


class UnmergeHandler(HandlerBase[UnmergeCall, UnmergeOutcome]):
    refusals = _REFUSALS

    def __init__(
        self,
        history: _History,
        profiles: ProfileWriter,
        inputs: Callable[[str], InputDef | None],
    ) -> None:
        """`inputs`: the input of a name, for the batches applied again."""
        self._history = history
        self._profiles = profiles
        self._inputs = inputs

    def run(self, uow: UnitOfWork, command: UnmergeCall) -> UnmergeOutcome:
        entry = self._history.get_merge(command.merge_id)
        if entry is None or entry.scope != command.scope:
            raise NotFound(f"no merge {command.merge_id}")
        restore(uow, entry, command.received_ms)
        since = [
            e
            for e in reversed(self._history.log_for_profile(entry.survivor, _REPLAY_LIMIT))
            if e.received_ms >= entry.merged_ms and e.status == BatchStatus.APPLIED
        ]
        reapplied = sum(self._reapply(uow, logged) for logged in since)
        return UnmergeOutcome(entry.survivor, reapplied)

    def _reapply(self, uow: UnitOfWork, entry: LogEntry) -> int:
        """Apply a logged batch again, to the profile it resolves to now; re-point its log
        entry there. 1 when it applied."""
        source = self._inputs(entry.input)
        if source is None or entry.id is None:
            return 0
        try:
            obs = observe(entry.body, source, entry.received_ms, entry.client_ip)
        except (InvalidBatch, msgspec.DecodeError):
            # Kept before a check it now fails (a timestamp out of range, say): as a
            # rebuild skips it, it stays where it is.
            return 0
        item = Accepted(source, obs, entry.body, entry.client_ip, entry.historical)
        decision, profiles = self._profiles.resolve(uow, item)
        if decision.mpid is None or decision.action != "attach":
            return 0
        mpid = decision.mpid
        self._profiles.apply(uow, item, decision, profiles.get(mpid), mpid, logged=False)
        uow.log.repoint([entry.id], mpid)
        return 1
