"""Real-time audiences (AUD-5): the registry of active audiences and live membership.
(Definitions and history: `services.audience_admin`; background work:
`services.audience_jobs`; compiling and evaluating, pure: `audiences.compiled` and
`audiences.membership`.)

The registry holds the active audiences, compiled once per definitions version (never
per event; see `services.definitions`), so an audience activated in any process counts
from the next transaction on. On each applied batch, `refresh` keeps the profile's event
histories active audiences use (each audience its own, from its inputs, within its
lookback) and re-evaluates only the audiences whose fields the batch changed (nested
audiences first, so an outer one sees their new memberships).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from kindred.audiences.compiled import (
    CompiledAudience,
    check_audience,
    compile_audience,
    folded_marks,
    nested_first,
    nesting_of,
)
from kindred.audiences.definition import AudienceDef, MembershipChange
from kindred.audiences.deps import touched_by
from kindred.audiences.history import Histories, histories_of, record_events
from kindred.audiences.membership import evaluate_memberships
from kindred.audiences.shadow import pending_shadow, proposed
from kindred.domain.changes import Change
from kindred.domain.errors import InvalidBatch
from kindred.domain.observation import EventFact
from kindred.domain.profile import Profile
from kindred.domain.tenancy import Tenancy
from kindred.ports import AudienceStore, DefinitionsVersion
from kindred.services.definitions import Versioned

__all__ = ["AudienceRegistry", "AudienceSet"]


class _Store(AudienceStore, DefinitionsVersion, Protocol):
    """The saved audiences and their version."""


@dataclass(frozen=True, slots=True)
class AudienceSet:
    """The audiences of one definitions version, compiled once."""

    active: list[CompiledAudience]  # each after the audiences it nests
    tracked: Histories  # the histories active audiences read
    by_id: dict[int, AudienceDef]  # every audience, deleted ones included
    # The histories whose `event_folded` marks are still read: a warming audience's (its
    # activation's pass) and a shadow edit's (its fold). Every other mark is dead weight
    # in the document, dropped at the profile's next batch.
    marked: frozenset[str] = frozenset()


class AudienceRegistry:
    def __init__(self, store: _Store, tenancy: Tenancy) -> None:
        self._store = store
        self._tenancy = tenancy
        self._sets = Versioned(store, self._load)

    def at(self, version: int) -> AudienceSet:
        """The audiences at the definitions version a transaction read."""
        return self._sets.at(version)

    def current(self) -> AudienceSet:
        """The audiences as last committed (outside any transaction)."""
        return self._sets.current()

    def _load(self) -> AudienceSet:
        saved = self._store.list_audiences()
        nesting = nesting_of(saved)
        compiled = [self.compile(a, nesting) for a in saved if a.status == "active"]
        # A shadow edit's histories are kept live as the audiences' own (BEY-4).
        shadows = self._shadows(saved, nesting)
        return AudienceSet(
            active=nested_first(compiled),
            # A standard audience's histories are its calculation's alone.
            tracked=histories_of(
                h for a in (*compiled, *shadows) if not a.standard for h in a.histories
            ),
            by_id={a.id: a for a in saved},
            marked=frozenset(
                h.key for a in (*(c for c in compiled if c.warming), *shadows) for h in a.histories
            ),
        )

    def _shadows(
        self, saved: Sequence[AudienceDef], nesting: dict[int, frozenset[int]]
    ) -> list[CompiledAudience]:
        """The proposed definitions of the pending shadow edits, compiled (one that no
        longer compiles cannot be promoted; its histories are not needed)."""
        found = []
        for audience in saved:
            shadow = pending_shadow(audience)
            if shadow is None:
                continue
            try:
                found.append(self.compile(proposed(shadow), nesting))
            except InvalidBatch:
                continue
        return found

    def compile(
        self, audience: AudienceDef, nesting: dict[int, frozenset[int]] | None = None
    ) -> CompiledAudience:
        """Parse and check the audience (against the saved audiences it may nest)."""
        if nesting is None:
            nesting = nesting_of(self._store.list_audiences())
        return compile_audience(audience, nesting, self._tenancy)

    def check(self, audience: AudienceDef) -> CompiledAudience:
        """Compile the audience with the checks made when it is saved (its workspaces,
        inputs, nested audiences: `audiences.compiled.check_audience`)."""
        return check_audience(audience, nesting_of(self._store.list_audiences()), self._tenancy)

    @property
    def tenancy(self) -> Tenancy:
        return self._tenancy

    def refresh(
        self,
        profile: Profile,
        changes: Sequence[Change],
        events: Sequence[EventFact],
        *,
        input_name: str,
        device_seen: bool,
        now_ms: int,
        version: int,
    ) -> tuple[Profile, list[MembershipChange]]:
        """The profile with its event history kept and its memberships re-evaluated for
        what the batch touched, under the audiences at `version`; the membership changes
        to log."""
        audiences = self.at(version)
        active = audiences.active
        if not active and not profile.memberships:
            return profile, []
        tracked = audiences.tracked
        history = record_events(profile.event_times, events, input_name, tracked, now_ms)
        if history != profile.event_times:
            profile = msgspec.structs.replace(profile, event_times=history)
        if profile.event_folded and not profile.event_folded.keys() <= audiences.marked:
            folded = {k: v for k, v in profile.event_folded.items() if k in audiences.marked}
            profile = msgspec.structs.replace(profile, event_folded=folded)
        keys = {
            k for e in events for k in (e.event_type, f"{e.event_type}:{(e.name or '').lower()}")
        }
        touched = touched_by(changes, keys, device_seen=device_seen)
        fresh = any(change.kind == "profile_created" for change in changes)
        if fresh:
            profile = folded_marks(profile, active)
        return evaluate_memberships(profile, active, touched, now_ms, fresh=fresh)
