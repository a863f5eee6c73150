"""A profile's audience memberships re-evaluated (AUD-5): only the audiences whose fields
a batch touched (all of them when the profile is due, or for the scheduler and backfills),
in the order the compiled audiences come (nested ones first), and the profile's due time:
the earliest instant time alone may change one of its memberships or calculated values.

Pure: ingest, the scheduler and the backfill (services) call it with the registry's
compiled audiences and an instant.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from kindred.audiences.compiled import CompiledAudience
from kindred.audiences.definition import MembershipChange
from kindred.audiences.deps import EVERYTHING
from kindred.audiences.evaluate import Subject
from kindred.domain.calculated_entries import next_due as next_calculated_due
from kindred.domain.profile import Membership, Profile

__all__ = ["evaluate_memberships"]


def evaluate_memberships(
    profile: Profile,
    active: Sequence[CompiledAudience],
    touched: set[str] | None,
    now_ms: int,
    reason: str | None = None,
    *,
    restrict: frozenset[int] | None = None,
    fresh: bool = False,
) -> tuple[Profile, list[MembershipChange]]:
    """Re-evaluate the audiences `touched` concerns (all when None) for the profile;
    with `restrict`, only those audiences (a backfill). An audience still `warming` is
    evaluated only for a profile its activation has folded (CompiledAudience.cold_for) or
    a `fresh` one (created by the batch in hand)."""
    if profile.audience_due_ms is not None and profile.audience_due_ms <= now_ms:
        touched = None  # time alone may have changed any of them since: do it all now
    everything = touched is None or EVERYTHING in touched
    current = dict(profile.memberships)
    moves = _drop_inactive(profile.mpid, current, active, restrict, now_ms)
    status = dict.fromkeys(current, True)
    flipped: set[int] = set()
    subjects: dict[frozenset[int], Subject] = {}
    for audience in active:
        aid = audience.id
        if (
            (restrict is not None and aid not in restrict)
            or profile.scope not in audience.scopes
            or (audience.cold_for(profile) and not fresh)
            or audience.standard  # its calculation alone changes it
        ):
            continue
        if not everything and not (
            audience.deps & touched or (flipped and audience.nested & flipped)  # type: ignore[operator]
        ):
            continue
        subject = subjects.get(audience.workspaces)
        if subject is None:
            subject = subjects[audience.workspaces] = Subject(
                profile, audience.workspaces, now_ms, status
            )
        # Only profiles seen in the audience's workspaces count (AUD-1).
        member = subject.seen() and audience.predicate(subject)
        if member == (aid in current):
            continue
        flipped.add(aid)
        status[aid] = member
        moves.append(_move(aid, profile.mpid, member, now_ms, reason or _why(audience, touched)))
        _set_membership(current, audience, member, now_ms)
    due = _due_after(profile, active, current, now_ms, touched, restrict=restrict, fresh=fresh)
    if not moves and due == profile.audience_due_ms:
        return profile, []
    changed = msgspec.structs.replace(profile, memberships=current, audience_due_ms=due)
    return changed, moves


def _due_after(
    profile: Profile,
    active: Sequence[CompiledAudience],
    memberships: dict[int, Membership],
    now_ms: int,
    touched: set[str] | None,
    *,
    restrict: frozenset[int] | None,
    fresh: bool,
) -> int | None:
    """The profile's due time after an evaluation of what `touched` concerns (all when
    None), or of the audiences in `restrict` (a backfill).

    A due time still ahead stays true for every audience whose data did not change: an
    evaluation may only bring it forward, to the next change of an audience it touched, so
    only theirs is computed (with 100 audiences, computing every one was ~15% of ingest).
    A held time that a touched audience no longer needs comes early: the scheduler then
    evaluates the profile for nothing, and sets the exact time."""
    held = profile.audience_due_ms
    if restrict is not None:
        if held is None:
            return _next_due(profile, active, memberships, now_ms, fresh=fresh)
        # A due time that has come stays: the audiences not evaluated are still due.
        evaluated = [a for a in active if a.id in restrict]
    elif touched is None or EVERYTHING in touched or held is None or held <= now_ms:
        return _next_due(profile, active, memberships, now_ms, fresh=fresh)
    else:
        evaluated = [a for a in active if a.timed and a.deps & touched]
        if not evaluated:
            return held
    found = _next_due(profile, evaluated, memberships, now_ms, fresh=fresh, calculated=False)
    return found if found is not None and found < held else held


def _drop_inactive(
    mpid: int,
    current: dict[int, Membership],
    active: Sequence[CompiledAudience],
    restrict: frozenset[int] | None,
    now_ms: int,
) -> list[MembershipChange]:
    """Memberships of audiences no longer active leave (those in `restrict` only)."""
    active_ids = {a.id for a in active}
    gone = [a for a in current if a not in active_ids and (restrict is None or a in restrict)]
    for aid in gone:
        del current[aid]
    return [_move(aid, mpid, False, now_ms, "audience no longer active") for aid in gone]


def _set_membership(
    current: dict[int, Membership], audience: CompiledAudience, member: bool, now_ms: int
) -> None:
    if member:
        current[audience.id] = audience.membership(now_ms)
    else:
        del current[audience.id]


def _next_due(
    profile: Profile,
    active: Sequence[CompiledAudience],
    memberships: dict[int, Membership],
    now_ms: int,
    *,
    fresh: bool,
    calculated: bool = True,
) -> int | None:
    """The earliest instant time alone may change one of the profile's memberships of
    `active`, or (`calculated`) one of its calculated values (the due time is the
    profile's, one for both)."""
    status = dict.fromkeys(memberships, True)
    subjects: dict[frozenset[int], Subject] = {}
    earliest = next_calculated_due(profile, now_ms) if calculated else None
    for audience in active:
        changes_at = audience.changes_at
        if (
            changes_at is None
            or (audience.cold_for(profile) and not fresh)
            or audience.standard
            or profile.scope not in audience.scopes
        ):
            continue
        subject = subjects.get(audience.workspaces)
        if subject is None:
            subject = subjects[audience.workspaces] = Subject(
                profile, audience.workspaces, now_ms, status
            )
        if not subject.seen():
            continue  # time alone brings no profile into a workspace
        at = changes_at(subject)
        if at is not None and (earliest is None or at < earliest):
            earliest = at
    return earliest


def _why(audience: CompiledAudience, touched: set[str] | None) -> str:
    if touched is None:
        return "evaluated"
    fields = sorted(audience.deps & touched) or sorted(touched)
    return ", ".join(fields)


def _move(aid: int, mpid: int, entered: bool, now_ms: int, reason: str) -> MembershipChange:
    return MembershipChange(
        audience_id=aid, mpid=mpid, entered=entered, at_ms=now_ms, reason=reason
    )
