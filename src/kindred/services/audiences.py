"""Real-time audiences (AUD-5): the registry of active audiences and live membership.
(Definitions and history: `services.audience_admin`; background work:
`services.audience_jobs`.)

The registry holds the active audiences, parsed once when saved (never per event), and
re-reads the store every few seconds, so an audience activated in another process is
picked up. On each applied batch, `refresh` keeps the profile's event history for the keys
active audiences use and re-evaluates only the audiences whose fields the batch changed
(nested audiences first, so an outer one sees their new memberships).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from kindred.audiences.ast import EventCriterion, Node
from kindred.audiences.compile import Predicate, compile_node
from kindred.audiences.definition import AudienceDef, MembershipChange
from kindred.audiences.deps import EVERYTHING, dependencies, event_criteria, touched_by
from kindred.audiences.evaluate import DAY_MS, Subject
from kindred.audiences.history import Histories, histories_of, record_events
from kindred.audiences.parse import Catalog, nested_audiences, parse_criteria
from kindred.audiences.timing import is_timed, next_change
from kindred.domain.calculated_entries import next_due as next_calculated_due
from kindred.domain.changes import Change
from kindred.domain.errors import InvalidBatch
from kindred.domain.observation import EventFact
from kindred.domain.profile import Membership, Profile
from kindred.domain.tenancy import Tenancy
from kindred.ports import AudienceStore, Clock

__all__ = [
    "INT64_MIN",
    "AudienceRegistry",
    "CompiledAudience",
    "evaluate_memberships",
    "with_backfill",
]


@dataclass(frozen=True, slots=True)
class CompiledAudience:
    definition: AudienceDef
    node: Node
    scopes: frozenset[str]
    workspaces: frozenset[int]
    deps: frozenset[str]
    nested: frozenset[int]
    histories: tuple[EventCriterion, ...]
    # Time alone can change its answer (recency windows): the scheduler comes back.
    timed: bool
    predicate: Predicate
    id: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", self.definition.id)

    def membership(self, since_ms: int) -> Membership:
        """The membership a profile entering it at `since_ms` holds."""
        return Membership(audience_id=self.id, name=_name(self.definition), since_ms=since_ms)


class AudienceRegistry:
    def __init__(
        self, store: AudienceStore, tenancy: Tenancy, clock: Clock, *, refresh_ms: int = 2000
    ) -> None:
        self._store = store
        self._tenancy = tenancy
        self._clock = clock
        self._refresh_ms = refresh_ms
        self._active: list[CompiledAudience] = []
        self._tracked = Histories()
        self._lookback_ms = 90 * DAY_MS
        self._loaded_ms: int | None = None
        self._lock = threading.Lock()

    def active(self) -> list[CompiledAudience]:
        """Active audiences, each after the audiences it nests."""
        now = self._clock.now_ms()
        if self._loaded_ms is None or not 0 <= now - self._loaded_ms < self._refresh_ms:
            with self._lock:
                self._load(now)
        return self._active

    def invalidate(self) -> None:
        self._loaded_ms = None

    def _load(self, now: int) -> None:
        saved = self._store.list_audiences()
        nesting = _nesting_of(saved)
        compiled = [self.compile(a, nesting) for a in saved if a.status == "active"]
        self._active = _nested_first(compiled)
        self._tracked = histories_of(h for a in compiled for h in a.histories)
        self._lookback_ms = max((a.definition.lookback_days for a in compiled), default=90) * DAY_MS
        self._loaded_ms = now

    def compile(
        self, audience: AudienceDef, nesting: dict[int, frozenset[int]] | None = None
    ) -> CompiledAudience:
        """Parse and check the audience (against the saved audiences it may nest)."""
        if nesting is None:
            nesting = _nesting_of(self._store.list_audiences())
        catalog = Catalog(audiences=nesting)
        node = parse_criteria(audience.criteria, catalog, audience.id or None)
        workspaces = frozenset(audience.workspaces)
        scopes = frozenset(
            self._tenancy.workspaces[w].identity_scope
            for w in workspaces
            if w in self._tenancy.workspaces
        )
        return CompiledAudience(
            audience,
            node,
            scopes,
            workspaces,
            dependencies(node),
            nested_audiences(node),
            event_criteria(node),
            is_timed(node),
            compile_node(node),
        )

    def refresh(
        self,
        profile: Profile,
        changes: Sequence[Change],
        events: Sequence[EventFact],
        *,
        device_seen: bool,
        now_ms: int,
    ) -> tuple[Profile, list[MembershipChange]]:
        """The profile with its event history kept and its memberships re-evaluated for
        what the batch touched; the membership changes to log."""
        active = self.active()
        if not active and not profile.memberships:
            return profile, []
        history = record_events(
            profile.event_times, events, self._tracked, now_ms - self._lookback_ms
        )
        if history != profile.event_times:
            profile = msgspec.structs.replace(profile, event_times=history)
        keys = {
            k for e in events for k in (e.event_type, f"{e.event_type}:{(e.name or '').lower()}")
        }
        touched = touched_by(changes, keys, device_seen=device_seen)
        return evaluate_memberships(profile, active, touched, now_ms)


def _nesting_of(saved: Sequence[AudienceDef]) -> dict[int, frozenset[int]]:
    """Every saved audience with the audiences it nests (for checks at save time)."""
    nesting: dict[int, frozenset[int]] = {}
    for audience in saved:
        if audience.status == "deleted":
            continue
        try:
            node = parse_criteria(audience.criteria, Catalog(audiences=_Anything()))
        except InvalidBatch:
            node = None
        nesting[audience.id] = nested_audiences(node) if node is not None else frozenset()
    return nesting


def evaluate_memberships(
    profile: Profile,
    active: Sequence[CompiledAudience],
    touched: set[str] | None,
    now_ms: int,
    reason: str | None = None,
    *,
    restrict: frozenset[int] | None = None,
) -> tuple[Profile, list[MembershipChange]]:
    """Re-evaluate the audiences `touched` concerns (all when None) for the profile;
    with `restrict`, only those audiences (a backfill)."""
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
        if (restrict is not None and aid not in restrict) or profile.scope not in audience.scopes:
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
        member = audience.predicate(subject)
        if member == (aid in current):
            continue
        flipped.add(aid)
        status[aid] = member
        moves.append(_move(aid, profile.mpid, member, now_ms, reason or _why(audience, touched)))
        _set_membership(current, audience, member, now_ms)
    due = profile.audience_due_ms
    if everything or due is None or due <= now_ms or _timed_touched(active, touched):
        due = _due_after(profile, active, current, now_ms, partial=restrict is not None)
    if not moves and due == profile.audience_due_ms:
        return profile, []
    changed = msgspec.structs.replace(profile, memberships=current, audience_due_ms=due)
    return changed, moves


def _due_after(
    profile: Profile,
    active: Sequence[CompiledAudience],
    memberships: dict[int, Membership],
    now_ms: int,
    *,
    partial: bool,
) -> int | None:
    """The profile's due time after an evaluation. After a `partial` one (some audiences
    only) what the others, or calculated values, were due for still is: it may only come
    forward."""
    found = _next_due(profile, active, memberships, now_ms)
    held = profile.audience_due_ms
    if not partial or held is None or (found is not None and found < held):
        return found
    return held


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


def _timed_touched(active: Sequence[CompiledAudience], touched: set[str] | None) -> bool:
    return touched is None or any(a.timed and a.deps & touched for a in active)


def _next_due(
    profile: Profile,
    active: Sequence[CompiledAudience],
    memberships: dict[int, Membership],
    now_ms: int,
) -> int | None:
    """The earliest instant time alone may change one of the profile's memberships, or one
    of its calculated values (the due time is the profile's, one for both)."""
    status = dict.fromkeys(memberships, True)
    subjects: dict[frozenset[int], Subject] = {}
    earliest = next_calculated_due(profile, now_ms)
    for audience in active:
        if not audience.timed or profile.scope not in audience.scopes:
            continue
        subject = subjects.get(audience.workspaces)
        if subject is None:
            subject = subjects[audience.workspaces] = Subject(
                profile, audience.workspaces, now_ms, status
            )
        at = next_change(audience.node, subject)
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


def _name(audience: AudienceDef) -> str:
    return audience.external_name or audience.name


def _nested_first(audiences: Sequence[CompiledAudience]) -> list[CompiledAudience]:
    by_id = {a.id: a for a in audiences}
    ordered: list[CompiledAudience] = []
    seen: set[int] = set()

    def visit(audience: CompiledAudience) -> None:
        if audience.id in seen:
            return
        seen.add(audience.id)
        for nested in sorted(audience.nested):
            if nested in by_id:
                visit(by_id[nested])
        ordered.append(audience)

    for audience in audiences:
        visit(audience)
    return ordered


class _Anything(dict[int, frozenset[int]]):
    """A catalog that knows every audience id (reading saved definitions back)."""

    def __contains__(self, key: object) -> bool:
        return True


INT64_MIN = -(2**63)


def with_backfill(audience: AudienceDef) -> AudienceDef:
    """The audience with a backfill (re)started from its first scope's first profile."""
    return msgspec.structs.replace(
        audience,
        backfill_scope="",  # sorts before every scope name: the run starts with the first
        backfill_from=INT64_MIN,
        backfill_done=0,
        backfill_finished_ms=None,
    )
