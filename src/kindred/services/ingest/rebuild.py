"""Rebuild profiles from the event log into another store.

Every accepted batch is in the log exactly as received, with what shaped it besides its
body (arrival time, the web client's IP, the historical flag) and the MPID it was applied
to. Replaying the log in order through the same pipeline, with each applied batch pinned to
its logged MPID, reproduces what batches made of the profiles and the identity index
exactly. IDSync calls, aliases and un-merges are not in the event log (the merge ledger
keeps merges and un-merges, for undoing them) and are not replayed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import msgspec

from kindred.domain.errors import InvalidBatch
from kindred.domain.tenancy import Tenancy
from kindred.ports import BatchStatus, EventLogReader, LogEntry
from kindred.services.writes.commands import Accepted, BatchOutcome
from kindred.wire.observe import observe

__all__ = ["Rebuild"]

_PAGE = 1000


class Rebuild:
    """This store's event log, replayed into another store's ingest (`kindred rebuild`)."""

    def __init__(self, log: EventLogReader, tenancy: Tenancy) -> None:
        self._log = log
        self._tenancy = tenancy

    def into(self, apply: Callable[[Sequence[Accepted]], list[BatchOutcome]]) -> dict[str, int]:
        """Replay every logged batch through `apply`; returns how many ended in each status
        (plus `skipped` for batches whose input no longer exists or that no longer
        decode)."""
        tally: Counter[str] = Counter()
        after = 0
        while entries := self._log.read_log(after, _PAGE):
            after = entries[-1].id or after
            replayed = (_replayed(e, self._tenancy, tally) for e in entries)
            items = [item for item in replayed if item]
            for outcome in apply(items) if items else ():
                tally[outcome.status] += 1
        return dict(tally)


def _replayed(entry: LogEntry, tenancy: Tenancy, tally: Counter[str]) -> Accepted | None:
    source = tenancy.input_named(entry.input)
    if source is None:
        tally["skipped"] += 1
        return None
    try:
        obs = observe(
            entry.body,
            source,
            entry.received_ms,
            entry.client_ip,
            historical=entry.historical,
        )
    except (InvalidBatch, msgspec.DecodeError):
        tally["skipped"] += 1
        return None
    if entry.status == BatchStatus.APPLIED and entry.mpid is not None:
        obs = msgspec.structs.replace(obs, mpid=entry.mpid)
    return Accepted(source, obs, entry.body, client_ip=entry.client_ip, historical=entry.historical)
