"""The membership log's rows as a SQL store writes them at commit: a row per change, or one
statement for a run of changes that differ only by profile (a backfill page's entries, an
audience's members removed), which spares a statement execution per row."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kindred.audiences.definition import MembershipChange
from kindred.storage.codec import MEMBERSHIP_COLUMNS, membership_row

__all__ = ["LOG_INSERT", "LogRuns", "log_query", "membership_log_writes"]

LOG_INSERT = (
    "INSERT INTO membership_log (audience_id, mpid, entered, at_ms, reason) VALUES (?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class LogRuns:
    """How a store inserts a run in one statement: `statement` takes the audience id,
    entered, the time, the reason and the run's MPIDs as `mpids` passes them, and inserts
    the rows in the order of the MPIDs."""

    statement: str
    mpids: Callable[[list[int]], object]
    shortest: int = 16  # shorter runs go row by row


def membership_log_writes(
    changes: Sequence[MembershipChange], runs: LogRuns | None
) -> list[tuple[str, list[tuple[object, ...]]]]:
    """(statement, rows) to run in order: the log gets the changes in their order."""
    if runs is None:
        return [(LOG_INSERT, [membership_row(c) for c in changes])]
    plan: list[tuple[str, list[tuple[object, ...]]]] = []
    singles: list[tuple[object, ...]] = []
    for (audience_id, entered, at_ms, reason), run in itertools.groupby(changes, _shared):
        mpids = [c.mpid for c in run]
        if len(mpids) < runs.shortest:
            singles.extend((audience_id, m, entered, at_ms, reason) for m in mpids)
            continue
        if singles:
            plan.append((LOG_INSERT, singles))
            singles = []
        plan.append((runs.statement, [(audience_id, entered, at_ms, reason, runs.mpids(mpids))]))
    if singles:
        plan.append((LOG_INSERT, singles))
    return plan


def _shared(change: MembershipChange) -> tuple[int, bool, int, str]:
    return change.audience_id, change.entered, change.at_ms, change.reason


def log_query(
    audience_id: int | None, mpid: int | None, until_ms: int, limit: int, mark: str
) -> tuple[str, tuple[object, ...]]:
    """The log's entries of an audience, or of a profile (or both), up to an instant, in
    their order; (statement, parameters) with the store's placeholder `mark`. Only the
    filters given are in the statement, so the planner can take the index by audience or
    by profile."""
    clauses, params = [f"at_ms <= {mark}"], [until_ms]
    if audience_id is not None:
        clauses.append(f"audience_id = {mark}")
        params.append(audience_id)
    if mpid is not None:
        clauses.append(f"mpid = {mark}")
        params.append(mpid)
    statement = (
        f"SELECT {MEMBERSHIP_COLUMNS} FROM membership_log"
        f" WHERE {' AND '.join(clauses)} ORDER BY id LIMIT {mark}"
    )
    return statement, (*params, limit)
