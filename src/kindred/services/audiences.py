"""Real-time audiences (AUD-1, AUD-5, AUD-10, AUD-12): definitions, live membership on
ingest, and the membership log.

The registry holds the active audiences, parsed once when saved (never per event), and
re-reads the store every few seconds, so an audience activated in another process is
picked up. On each applied batch, `refresh` keeps the profile's event history for the keys
active audiences use and re-evaluates only the audiences whose fields the batch changed
(nested audiences first, so an outer one sees their new memberships).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec

from kindred.audiences.ast import Node
from kindred.audiences.compile import Predicate, compile_node
from kindred.audiences.definition import MAX_TAG_LENGTH, AudienceDef, MembershipChange
from kindred.audiences.deps import EVERYTHING, dependencies, event_keys, touched_by
from kindred.audiences.evaluate import DAY_MS, Subject
from kindred.audiences.history import record_events
from kindred.audiences.parse import Catalog, nested_audiences, parse_criteria
from kindred.audiences.prefilter import Has, needles
from kindred.audiences.timing import is_timed, next_change
from kindred.domain.changes import Change
from kindred.domain.errors import InvalidBatch, NotFound
from kindred.domain.observation import EventFact
from kindred.domain.profile import Membership, Profile
from kindred.domain.tenancy import Tenancy
from kindred.ports import AudienceStore, Clock, ConcurrentUpdate, Needles, Store, UnitOfWork

__all__ = [
    "AudienceBackfill",
    "AudienceMetrics",
    "AudienceRegistry",
    "AudienceScheduler",
    "AudienceService",
    "CompiledAudience",
    "evaluate_memberships",
]


@dataclass(frozen=True, slots=True)
class CompiledAudience:
    definition: AudienceDef
    node: Node
    scopes: frozenset[str]
    workspaces: frozenset[int]
    deps: frozenset[str]
    nested: frozenset[int]
    event_keys: frozenset[str]
    # Time alone can change its answer (recency windows): the scheduler comes back.
    timed: bool
    predicate: Predicate
    id: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", self.definition.id)


class AudienceRegistry:
    def __init__(
        self, store: AudienceStore, tenancy: Tenancy, clock: Clock, *, refresh_ms: int = 2000
    ) -> None:
        self._store = store
        self._tenancy = tenancy
        self._clock = clock
        self._refresh_ms = refresh_ms
        self._active: list[CompiledAudience] = []
        self._tracked: frozenset[str] = frozenset()
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
        self._tracked = frozenset().union(*(a.event_keys for a in compiled))
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
            event_keys(node),
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
    status = dict.fromkeys(current, True)
    flipped: set[int] = set()
    moves: list[MembershipChange] = []
    active_ids = {a.id for a in active}
    for aid in [a for a in current if a not in active_ids]:
        if restrict is None or aid in restrict:
            del current[aid]
            moves.append(_move(aid, profile.mpid, False, now_ms, "audience no longer active"))
    subjects: dict[frozenset[int], Subject] = {}
    scope = profile.scope
    for audience in active:
        aid = audience.id
        if (restrict is not None and aid not in restrict) or scope not in audience.scopes:
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
        if member:
            current[aid] = Membership(
                audience_id=aid, name=_name(audience.definition), since_ms=now_ms
            )
        else:
            del current[aid]
    due = profile.audience_due_ms
    if everything or due is None or due <= now_ms or _timed_touched(active, touched):
        due = _next_due(profile, active, current, now_ms)
    if not moves and due == profile.audience_due_ms:
        return profile, []
    changed = msgspec.structs.replace(profile, memberships=current, audience_due_ms=due)
    return changed, moves


def _timed_touched(active: Sequence[CompiledAudience], touched: set[str] | None) -> bool:
    return touched is None or any(a.timed and a.deps & touched for a in active)


def _next_due(
    profile: Profile,
    active: Sequence[CompiledAudience],
    memberships: dict[int, Membership],
    now_ms: int,
) -> int | None:
    """The earliest instant time alone may change one of the profile's memberships."""
    status = dict.fromkeys(memberships, True)
    subjects: dict[frozenset[int], Subject] = {}
    earliest: int | None = None
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


class AudienceMetrics(msgspec.Struct, frozen=True, kw_only=True):
    audience_id: int
    size: int
    adds_24h: int
    drops_24h: int
    # (adds + drops) / size; null for an empty audience
    volatility_24h: float | None
    last_updated_ms: int
    # The backfill of the existing profiles: running, and how many it has evaluated.
    backfill_running: bool
    backfill_evaluated: int


class AudienceService:
    """Managing definitions (AUD-1, AUD-10) and reading the membership log (AUD-12)."""

    def __init__(self, store: AudienceStore, registry: AudienceRegistry, clock: Clock) -> None:
        self._store = store
        self._registry = registry
        self._clock = clock

    def all(self, tags: Iterable[str] = ()) -> list[AudienceDef]:
        wanted = set(tags)
        return [
            a
            for a in self._store.list_audiences()
            if a.status != "deleted" and wanted <= set(a.tags)
        ]

    def get(self, audience_id: int) -> AudienceDef:
        for audience in self._store.list_audiences():
            if audience.id == audience_id and audience.status != "deleted":
                return audience
        raise NotFound(f"no audience {audience_id}")

    def create(self, audience: AudienceDef, created_by: str = "") -> AudienceDef:
        now = self._clock.now_ms()
        draft = msgspec.structs.replace(
            audience, id=0, status="draft", created_ms=now, updated_ms=now, created_by=created_by
        )
        self._check(draft)
        return self._save(draft)

    def update(self, audience_id: int, audience: AudienceDef) -> AudienceDef:
        current = self.get(audience_id)
        changed = msgspec.structs.replace(
            audience,
            id=audience_id,
            status=current.status,
            created_ms=current.created_ms,
            created_by=current.created_by,
            updated_ms=self._clock.now_ms(),
        )
        self._check(changed)
        return self._save(_with_backfill(changed) if changed.status == "active" else changed)

    def set_status(self, audience_id: int, status: str) -> AudienceDef:
        if status not in ("active", "inactive"):
            raise InvalidBatch("status is active or inactive", "status")
        current = self.get(audience_id)
        changed = msgspec.structs.replace(
            current,
            status=status,
            updated_ms=self._clock.now_ms(),
        )
        return self._save(_with_backfill(changed) if status == "active" else changed)

    def clone(self, audience_id: int) -> AudienceDef:
        current = self.get(audience_id)
        copy = msgspec.structs.replace(current, name=f"{current.name} (copy)")
        return self.create(copy, created_by=current.created_by)

    def delete(self, audience_id: int) -> AudienceDef:
        current = self.get(audience_id)
        nesting = [
            a.id
            for a in self.all()
            if a.id != audience_id and audience_id in self._registry.compile(a).nested
        ]
        if nesting:
            raise InvalidBatch(
                f"audience {audience_id} is nested in audience {nesting[0]}; change that first",
                "audience_id",
            )
        changed = msgspec.structs.replace(
            current, status="deleted", updated_ms=self._clock.now_ms()
        )
        return self._save(changed)

    def metrics(self, audience_id: int) -> AudienceMetrics:
        """Page metrics (AUD-6): size, adds and drops in the last 24 hours, volatility."""
        audience = self.get(audience_id)
        now = self._clock.now_ms()
        counts = self._store.membership_counts(audience_id, now - DAY_MS)
        size = counts.entered - counts.exited
        moves = counts.entered_since + counts.exited_since
        updated = max(audience.updated_ms, counts.last_change_ms or 0)
        return AudienceMetrics(
            audience_id=audience_id,
            size=size,
            adds_24h=counts.entered_since,
            drops_24h=counts.exited_since,
            volatility_24h=round(moves / size, 4) if size else None,
            last_updated_ms=updated,
            backfill_running=audience.backfill_scope is not None,
            backfill_evaluated=audience.backfill_done,
        )

    def members_at(self, audience_id: int, at_ms: int) -> list[int]:
        """The profiles in the audience at an instant, from the membership log."""
        log = self._store.membership_log(
            audience_id=audience_id, mpid=None, until_ms=at_ms, limit=10_000_000
        )
        state: dict[int, bool] = {}
        for change in log:
            state[change.mpid] = change.entered
        return sorted(m for m, inside in state.items() if inside)

    def audiences_of_at(self, mpid: int, at_ms: int) -> list[int]:
        log = self._store.membership_log(
            audience_id=None, mpid=mpid, until_ms=at_ms, limit=1_000_000
        )
        state: dict[int, bool] = {}
        for change in log:
            state[change.audience_id] = change.entered
        return sorted(a for a, inside in state.items() if inside)

    def _check(self, audience: AudienceDef) -> None:
        if not audience.name.strip():
            raise InvalidBatch("an audience needs a name", "name")
        if not audience.workspaces:
            raise InvalidBatch("name at least one workspace", "workspaces")
        for tag in audience.tags:
            if len(tag) > MAX_TAG_LENGTH:
                raise InvalidBatch(f"tag {tag!r} is over {MAX_TAG_LENGTH} characters", "tags")
        if audience.lookback_days < 1:
            raise InvalidBatch("lookback_days must be at least 1", "lookback_days")
        self._registry.compile(audience)

    def _save(self, audience: AudienceDef) -> AudienceDef:
        saved = self._store.save_audience(audience)
        self._registry.invalidate()
        return saved


class AudienceScheduler:
    """Re-evaluates the profiles whose due time has come (AUD-5): "last 7 days" windows
    closing, frequencies falling as events age out, without any new event. A chunk per
    transaction; safe in several processes (claimed rows are skipped elsewhere)."""

    def __init__(self, store: Store, registry: AudienceRegistry, clock: Clock, chunk: int = 500):
        self._store = store
        self._registry = registry
        self._clock = clock
        self._chunk = chunk

    def run(self) -> int:
        """Re-evaluate every due profile; returns how many membership changes it made."""
        now = self._clock.now_ms()
        active = self._registry.active()
        changed = 0
        while True:
            try:
                done, moved = self._chunk_once(active, now)
            except ConcurrentUpdate:
                continue  # a batch updated a claimed profile: read the chunk again
            changed += moved
            if done < self._chunk:
                return changed

    def _chunk_once(self, active: Sequence[CompiledAudience], now: int) -> tuple[int, int]:
        with self._store.unit_of_work() as uow:
            due = uow.due_profiles(now, self._chunk)
            moved = 0
            for profile in due:
                after, moves = evaluate_memberships(profile, active, None, now, reason="time")
                if after is profile:
                    after = msgspec.structs.replace(profile, audience_due_ms=None)
                uow.save_profile(msgspec.structs.replace(after, version=profile.version + 1))
                if moves:
                    uow.append_memberships(moves)
                    moved += len(moves)
        return len(due), moved


INT64_MIN = -(2**63)


def _with_backfill(audience: AudienceDef) -> AudienceDef:
    """The audience with a backfill (re)started from its first scope's first profile."""
    return msgspec.structs.replace(
        audience,
        backfill_scope="",  # sorts before every scope name: the run starts with the first
        backfill_from=INT64_MIN,
        backfill_done=0,
        backfill_finished_ms=None,
    )


class AudienceBackfill:
    """Computes an activated (or edited) audience's membership over the profiles that
    already exist, in the background, a chunk per transaction, resuming where it stopped
    (the cursor is kept on the definition). Live batches go on meanwhile: both evaluate
    the profile's current state in their own transaction, so nothing is lost or counted
    twice."""

    def __init__(
        self,
        store: Store,
        registry: AudienceRegistry,
        clock: Clock,
        *,
        chunk: int = 500,
        chunks_per_run: int = 40,
    ) -> None:
        self._store = store
        self._registry = registry
        self._clock = clock
        self._chunk = chunk
        self._chunks_per_run = chunks_per_run

    def run(self) -> int:
        """Advance every pending backfill by up to `chunks_per_run` chunks; returns how
        many profiles it evaluated."""
        evaluated = 0
        for audience in self._store.list_audiences():
            if audience.status == "active" and audience.backfill_scope is not None:
                evaluated += self._advance(audience)
        return evaluated

    def _advance(self, audience: AudienceDef) -> int:
        self._registry.invalidate()  # the audience may have been activated a moment ago
        active = self._registry.active()
        target = next((a for a in active if a.id == audience.id), None)
        if target is None:
            return 0
        affected = _nesting(target.id, active)
        wanted = _backfill_needles(target, affected)
        scopes = sorted(target.scopes)
        saved_scope = audience.backfill_scope or ""
        scope: str | None = saved_scope
        start = INT64_MIN if audience.backfill_from is None else audience.backfill_from
        if saved_scope not in scopes:
            scope, start = _next_scope(scopes, saved_scope), INT64_MIN
        evaluated = 0
        for _ in range(self._chunks_per_run):
            if scope is None:
                break
            count, last = self._chunk_once(scope, start, active, (affected, wanted))
            evaluated += count
            if count == self._chunk:
                start = last + 1
            else:
                scope, start = _next_scope(scopes, scope), INT64_MIN
        self._save(audience, scope, start, evaluated)
        return evaluated

    def _chunk_once(
        self,
        scope: str,
        start: int,
        active: Sequence[CompiledAudience],
        which: tuple[frozenset[int], Needles | None],
    ) -> tuple[int, int]:
        affected, wanted = which
        now = self._clock.now_ms()
        for _ in range(5):
            try:
                with self._store.unit_of_work() as uow:
                    page = uow.profiles_from(scope, start, self._chunk, wanted)
                    for profile in page:
                        self._evaluate(uow, profile, active, affected, now)
                return len(page), page[-1].mpid if page else start
            except ConcurrentUpdate:
                continue  # a batch changed one of them meanwhile: read the chunk again
        return 0, start

    @staticmethod
    def _evaluate(
        uow: UnitOfWork,
        profile: Profile,
        active: Sequence[CompiledAudience],
        affected: frozenset[int],
        now: int,
    ) -> None:
        if profile.merged_into is not None:
            return
        after, moves = evaluate_memberships(
            profile, active, None, now, "backfill", restrict=affected
        )
        if after is not profile:
            uow.save_profile(msgspec.structs.replace(after, version=profile.version + 1))
            if moves:
                uow.append_memberships(moves)

    def _save(self, audience: AudienceDef, scope: str | None, start: int, done: int) -> None:
        current = next((a for a in self._store.list_audiences() if a.id == audience.id), None)
        if current is None or current.backfill_from != audience.backfill_from:
            return  # edited or advanced elsewhere meanwhile: that run carries on
        self._store.save_audience(
            msgspec.structs.replace(
                current,
                backfill_scope=scope,
                backfill_from=None if scope is None else start,
                backfill_done=current.backfill_done + done,
                backfill_finished_ms=self._clock.now_ms() if scope is None else None,
            )
        )


def _backfill_needles(target: CompiledAudience, affected: frozenset[int]) -> Needles | None:
    """What a profile's document must contain for the backfill to have anything to do:
    to match the criteria, or to hold the membership already (to leave). Only for an
    audience no other active audience nests (those would need their own)."""
    if affected != {target.id}:
        return None
    criteria = needles(target.node)
    if criteria is None:
        return None
    return ("or", [criteria, Has(f'"audience_id":{target.id},')])


def _next_scope(scopes: Sequence[str], after: str) -> str | None:
    later = [s for s in scopes if s > after]
    return later[0] if later else None


def _nesting(audience_id: int, active: Sequence[CompiledAudience]) -> frozenset[int]:
    """The audience and every active audience that nests it, directly or not."""
    found = {audience_id}
    changed = True
    while changed:
        changed = False
        for audience in active:
            if audience.id not in found and audience.nested & found:
                found.add(audience.id)
                changed = True
    return frozenset(found)
