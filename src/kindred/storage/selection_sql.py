"""The statements of a selection page (UnitOfWork.apply_selection), one plan for both SQL
stores: each spells placeholders, the scope test and the join its own way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SelectionDialect", "selection_sql"]


@dataclass(frozen=True)
class SelectionDialect:
    """How a SQL store spells the statements of a selection page (see selection_sql)."""

    named: Callable[[str], str]  # a named placeholder: ":x" or "%(x)s"
    scope: str  # the page's scope test on `profiles`, as the dialect best walks the key
    join: str  # joining the audience's members to their profiles, members first


def selection_sql(dialect: SelectionDialect, admitted: str, prefilter: str) -> tuple[str, str]:
    """The two statements of UnitOfWork.apply_selection over a page of MPIDs `from`..`last`
    of one scope: members `admitted` no longer holds leave, then profiles it holds that are
    not members enter (each RETURNING mpid). `prefilter` is a cheap superset of `admitted`."""
    n = dialect.named
    page = f"{dialect.scope} AND mpid >= {n('from')} AND mpid <= {n('last')}"
    member = (
        "EXISTS (SELECT 1 FROM audience_members AS m"
        f" WHERE m.audience_id = {n('audience')} AND m.mpid = profiles.mpid)"
    )
    leave = (
        # From the audience's members (few) to their profiles, not the other way round.
        f"DELETE FROM audience_members WHERE audience_id = {n('audience')} AND mpid IN"
        f" (SELECT m.mpid FROM audience_members AS m {dialect.join} profiles"
        f" ON profiles.mpid = m.mpid WHERE m.audience_id = {n('audience')}"
        f" AND m.mpid >= {n('from')} AND m.mpid <= {n('last')} AND {dialect.scope}"
        f" AND NOT ({admitted})) RETURNING mpid"
    )
    enter = (
        "INSERT INTO audience_members (audience_id, mpid, name, since_ms)"
        f" SELECT {n('audience')}, mpid, {n('name')}, {n('since')} FROM profiles"
        f" WHERE {page} AND ({prefilter}) AND NOT {member} AND {admitted}"
        " ORDER BY mpid RETURNING mpid"
    )
    return leave, enter
