"""One page of an activation's pass (services.audiences.activation): what a run works with
(`Plan`), and a page of profiles folded, evaluated and saved (`Page`); also the evaluation
of a profile against a few audiences that the backfills share (`evaluated`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import msgspec

from kindred.audiences.compiled import CompiledAudience
from kindred.audiences.definition import AudienceDef, MembershipChange
from kindred.audiences.history import Histories, fold_taken
from kindred.audiences.membership import evaluate_memberships
from kindred.domain.expiry import TtlRules, without_expired
from kindred.domain.profile import Profile
from kindred.ports import BatchStatus, LogEntry, PreparedSaves, UnitOfWork
from kindred.services.audiences.log_reading import LogReading
from kindred.services.merges import follow_merged

__all__ = ["Page", "Plan", "evaluated", "folded_to", "with_mark"]


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run of the pass works with: the audience's histories and their reader, the
    audiences to evaluate (the target as if already warm, and those nesting it), the
    attribute expiry rules and the instant."""

    audience: AudienceDef
    scopes: frozenset[str]
    some: Histories
    reading: LogReading
    live: tuple[CompiledAudience, ...]
    affected: frozenset[int]
    ttls: dict[int, TtlRules]
    now_ms: int
    # Each history's mark once folded: the log id up to which the pass folds (`history_to`).
    marks: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        marks = dict.fromkeys(self.some.specs, self.audience.history_to)
        object.__setattr__(self, "marks", marks)


class Page:
    """One page of profiles, folded and evaluated from what was read (a survivor outside
    the page is loaded when a merged profile's batches come to it), then saved, each
    profile once, in a transaction that checks the versions read."""

    def __init__(
        self,
        plan: Plan,
        profiles: Sequence[Profile],
        load: Callable[[Sequence[int]], dict[int, Profile]],
    ) -> None:
        self._plan = plan
        self._profiles = profiles
        self._read = load
        self._loaded = {p.mpid: p for p in profiles}
        self._state = dict(self._loaded)
        self._moves: list[MembershipChange] = []

    def fold_and_evaluate(self, logged: Iterable[LogEntry]) -> None:
        by_mpid: dict[int, list[LogEntry]] = {}
        for entry in logged:
            if entry.status == BatchStatus.APPLIED and entry.mpid is not None:
                by_mpid.setdefault(entry.mpid, []).append(entry)
        for stored in self._profiles:
            self._moves.extend(self._one(stored.mpid, by_mpid.get(stored.mpid, ())))

    def saves(self, prepare: Callable[[Sequence[Profile]], PreparedSaves]) -> PreparedSaves:
        """The profiles the page changed, each at the version after the one read, made
        ready for their save by the store (`ProfileReader.prepare_saves`): outside the
        transaction that saves them, which then holds the writer for less."""
        return prepare(
            [
                msgspec.structs.replace(state, version=self._loaded[mpid].version + 1)
                for mpid, state in self._state.items()
                if state is not self._loaded[mpid]
            ]
        )

    def save(self, uow: UnitOfWork, saves: PreparedSaves) -> None:
        """Save the page's `saves` (as `saves()` made them), each checked against the
        version read."""
        uow.profiles.adopt([self._loaded[p.mpid] for p in saves.profiles])
        uow.profiles.save_prepared(saves)
        if self._moves:
            uow.memberships.append(self._moves)

    def _one(self, mpid: int, own: Sequence[LogEntry]) -> list[MembershipChange]:
        plan = self._plan
        profile = self._state[mpid]
        done = folded_to(profile, plan)
        fresh = [e for e in own if (e.id or 0) > done]
        if profile.merged_into is None:
            if done < plan.audience.history_to:
                self._state[mpid] = self._folded(with_mark(profile, plan), fresh)
            return self._evaluate(mpid)
        if not fresh:
            return []
        # A merged profile's batches count for its survivor; its stub keeps the mark.
        self._state[mpid] = with_mark(profile, plan)
        survivor = follow_merged(self._load, profile)
        if survivor is None or survivor.scope not in plan.scopes:
            return []
        self._state[survivor.mpid] = self._folded(survivor, fresh)
        return self._evaluate(survivor.mpid)

    def _folded(self, profile: Profile, logged: Sequence[LogEntry]) -> Profile:
        taken = self._plan.reading.taken(logged)
        if not taken:
            return profile
        history = fold_taken(profile.event_times, taken, self._plan.some, self._plan.now_ms)
        return msgspec.structs.replace(profile, event_times=history)

    def _evaluate(self, mpid: int) -> list[MembershipChange]:
        plan = self._plan
        after, moves = evaluated(
            self._state[mpid], plan.live, plan.affected, now=plan.now_ms, ttls=plan.ttls
        )
        self._state[mpid] = after
        return moves

    def _load(self, mpid: int) -> Profile | None:
        if mpid not in self._state:
            found = self._read([mpid]).get(mpid)
            if found is None:
                return None
            self._loaded[mpid] = self._state[mpid] = found
        return self._state[mpid]


def folded_to(profile: Profile, plan: Plan) -> int:
    """The log id up to which the batches logged under the profile's MPID are folded into
    the histories (an edit keeping the histories' keys folds only those after it)."""
    folded = profile.event_folded
    if not folded:
        return 0
    return min(folded.get(key, 0) for key in plan.some.specs)


def with_mark(profile: Profile, plan: Plan) -> Profile:
    marks = plan.marks
    folded = {**profile.event_folded, **marks} if profile.event_folded else dict(marks)
    return msgspec.structs.replace(profile, event_folded=folded)


def evaluated(
    profile: Profile,
    active: Sequence[CompiledAudience],
    affected: frozenset[int],
    *,
    now: int,
    ttls: dict[int, TtlRules],
) -> tuple[Profile, list[MembershipChange]]:
    """The profile with its memberships of the `affected` audiences evaluated (a merged
    profile's stub as it is), and the changes to log. Evaluated without the values expired
    by now; the stored profile keeps them for the expiry sweep, which evaluates every
    audience reading them (this evaluates a few)."""
    if profile.merged_into is not None:
        return profile, []
    view, _ = without_expired(profile, ttls, now)
    after, moves = evaluate_memberships(view, active, None, now, "backfill", restrict=affected)
    if after is view:
        return profile, []
    kept = msgspec.structs.replace(
        profile, memberships=after.memberships, audience_due_ms=after.audience_due_ms
    )
    return kept, moves
