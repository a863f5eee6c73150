"""The audience estimator (AUD-7): the size of any definition (draft or active, saved or
not) and of each of its top-level criteria, from a stable uniform sample of the profiles of
its scopes (`audiences.sample`), answered at once; and the size an audience item shows,
the estimate until its activation's calculation is complete, then the real size.

The sample's profiles are evaluated with the audience's own compiled criteria, exactly as
the backfill evaluates them (only profiles seen in its workspaces count; nested audiences
by the stored memberships); its event criteria read histories folded from the sampled
profiles' logged batches (merges move a batch to the survivor's MPID) the way activation
folds the event log (`LogReading`, `fold_events`), within the audience's lookback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from threading import Lock
from typing import Protocol

import msgspec

from kindred.audiences.ast import All, AnyOf, Exclude, Node
from kindred.audiences.compile import Predicate, compile_node
from kindred.audiences.compiled import CompiledAudience
from kindred.audiences.definition import AudienceDef, check_settings
from kindred.audiences.evaluate import Subject
from kindred.audiences.history import Histories, fold_events, histories_of
from kindred.audiences.sample import ScopeTally, SizeEstimate, estimate_size
from kindred.domain.errors import InvalidBatch
from kindred.domain.observation import EventFact
from kindred.domain.profile import Profile
from kindred.ports import (
    AudienceStore,
    BatchStatus,
    Clock,
    EventLogReader,
    LogEntry,
    ProfileReader,
    ProfileSample,
)
from kindred.services.audiences.log_reading import DecodedBatch, LogReading, decoded_batch
from kindred.services.audiences.registry import AudienceRegistry

__all__ = [
    "DEFAULT_SAMPLE",
    "REFRESH_PAUSE_S",
    "REREAD_EVERY",
    "SAMPLE_KEPT_S",
    "WARM_FOR_S",
    "AudienceEstimate",
    "AudienceEstimator",
    "AudienceSize",
    "CriterionEstimate",
    "ScopeSample",
]

# Profiles per scope in the sample. The cost is per sampled profile, whatever the store's
# size: ~40 µs of CPU each to read and decode, ~45 µs more to read and decode its batches
# (bench/estimate.py, bench/RESULTS.md); a server pays both in the background (`refresh`),
# so an estimate only evaluates and folds (12-63 ms of CPU at 2,500). An audience of 10% is
# within about ±12% (95%) at 2,500.
DEFAULT_SAMPLE = 2_500
# A scope's sample, read and decoded, is used for this long at most: a server reads it
# again every `audiences.estimate_refresh_s` in the background, so that no estimate waits
# for the read; without that (the CLI), estimates asked one after another read no profile
# again. Either way an estimate may miss the changes of the last seconds: it is of a
# sample, not of this instant.
SAMPLE_KEPT_S = 10.0
# A server keeps warm the scopes estimated within this long (every scope at its start).
WARM_FOR_S = 3_600.0
# A refresh reads the sampled profiles' batches this many profiles at a time, pausing
# between reads (`pause`): its work comes in short slices, which the writer's and the
# event loop's threads share the interpreter with, not in one burst of a few hundred ms.
REFRESH_SLICE = 250
# A server's pause between those slices: ~10 slices at the default sample size, so a
# refresh takes ~0.2 s longer and uses the interpreter a small share of that time.
REFRESH_PAUSE_S = 0.02
# A refresh reads the batches of the sampled profiles stored as they were at the last read
# only one refresh in this many (each profile on a turn of its own, by its MPID), and keeps
# the rest as read: a batch is applied, replayed or moved by a merge only with a change of
# its profile, which makes the profile read again; what can change a profile's batches
# without it (retention removing old ones) shows within this many refreshes. Reading every
# sampled profile's whole log every time cost PostgreSQL a burst of reads each refresh, and
# ingest beside it its p99 (bench/RESULTS.md).
REREAD_EVERY = 12


class _Store(AudienceStore, ProfileReader, EventLogReader, Protocol):
    """The saved audiences (nested ones' state), the sample and its profiles' batches."""


class CriterionEstimate(msgspec.Struct, kw_only=True):
    """One top-level criterion's estimate: the profiles it selects, or for an `exclude`
    criterion (`excludes`) the profiles it leaves out."""

    index: int
    criterion: dict[str, object]
    excludes: bool
    estimate: int | None  # null: too few sampled members to estimate ("~")
    shown: str  # the estimate as the product shows it: "12,300" or "~"
    low: int | None
    high: int | None
    sampled_members: int


class ScopeSample(msgspec.Struct, kw_only=True):
    """One identity scope's sample: its profiles (merged profiles' stubs left out) and the
    chance each profile of the scope had to be in it."""

    scope: str
    profiles: int
    fraction: float


class AudienceEstimate(msgspec.Struct, kw_only=True):
    audience_id: int | None  # None: a definition not saved
    estimate: int | None  # null: too few sampled members to estimate ("~")
    shown: str
    low: int | None  # the 95% interval
    high: int | None
    exact: bool  # the sample held every profile: the estimate is the count
    sampled_members: int
    sample_size: int
    samples: list[ScopeSample]
    criteria: list[CriterionEstimate]
    estimated_ms: int


class AudienceSize(msgspec.Struct, kw_only=True):
    """The size an audience item shows: the estimate (`size_estimated`) until its
    activation's calculation is complete, then the real size (its members now)."""

    size: int | None  # null: an estimate too small to give ("~")
    size_estimated: bool
    size_shown: str


# A batch and the events of it that some histories take.
_Events = tuple[LogEntry, tuple[EventFact, ...]]


@dataclass(slots=True)
class _Held:
    """A scope's sample as read (`read_at`: monotonic seconds), its live profiles, and,
    read by a server's refresh, their applied batches with every event decoded
    (`batches`), whatever the criteria. Without it (a sample an estimate read itself),
    their batches once an estimate with event criteria has read them (`log`), and only
    the events its criteria may take decoded, by the inputs and event keys they were
    read for (`events`): a single estimate (the CLI's) decodes no more than it needs."""

    read_at: float
    sample: ProfileSample
    live: list[Profile]
    batches: list[DecodedBatch] | None = None
    log: list[LogEntry] | None = None
    events: dict[tuple[frozenset[str], frozenset[str]], list[_Events]] = field(default_factory=dict)


def _unchanged(held: _Held, before: _Held | None, turn: int) -> set[int]:
    """The MPIDs of the held profiles stored as they were when `before` was read (the
    sample then decodes them to the same object) whose batches were read then, except
    those whose turn to be read again it is."""
    if before is None or before.batches is None:
        return set()
    previous = {p.mpid: p for p in before.live}
    return {
        p.mpid for p in held.live if previous.get(p.mpid) is p and p.mpid % REREAD_EVERY != turn
    }


@dataclass(frozen=True, slots=True)
class _Counted:
    """What one scope's sample gave."""

    sample: ScopeSample
    bound: int
    members: int
    per_criterion: list[int]


class AudienceEstimator:
    def __init__(
        self,
        store: _Store,
        registry: AudienceRegistry,
        clock: Clock,
        *,
        sample_size: int = DEFAULT_SAMPLE,
        kept_s: float = SAMPLE_KEPT_S,
        pause: Callable[[], None] = lambda: None,
    ) -> None:
        """`kept_s`: how long a scope's sample, read, is used again (0: read each time).
        `pause`: called by a refresh between its slices of work (a server sleeps there)."""
        self._store = store
        self._registry = registry
        self._clock = clock
        self._sample_size = sample_size
        self._kept_s = kept_s
        self._pause = pause
        self._held: dict[str, _Held] = {}
        # When each scope was last estimated (monotonic seconds): `refresh` keeps those warm.
        self._asked: dict[str, float] = {}
        self._warmed = False
        self._refreshes = 0  # whose turn it is to have its batches read again
        # The estimate an item shows while its audience is calculated, per (id, edit).
        self._shown: dict[tuple[int, int], AudienceEstimate] = {}
        self._lock = Lock()

    def estimate(self, audience: AudienceDef) -> AudienceEstimate:
        """The estimate of a definition, saved (its id) or not; InvalidBatch when it is
        invalid or cannot be estimated."""
        target = self._estimable(audience)
        now = self._clock.now_ms()
        items = _top_level(target.node)
        tests = [compile_node(node) for node, _ in items]
        counted = [self._count(target, scope, tests, now) for scope in sorted(target.scopes)]
        whole = estimate_size([ScopeTally(c.members, c.bound) for c in counted])
        criteria = [
            _criterion(
                n,
                _written(audience.criteria, n, len(items)),
                excludes,
                estimate_size([ScopeTally(c.per_criterion[n], c.bound) for c in counted]),
            )
            for n, (_, excludes) in enumerate(items)
        ]
        return AudienceEstimate(
            audience_id=audience.id or None,
            estimate=whole.size,
            shown=whole.shown,
            low=whole.low,
            high=whole.high,
            exact=whole.exact,
            sampled_members=whole.sampled_members,
            sample_size=sum(c.sample.profiles for c in counted),
            samples=[c.sample for c in counted],
            criteria=criteria,
            estimated_ms=now,
        )

    def while_calculating(self, audience: AudienceDef) -> AudienceEstimate | None:
        """The estimate an active real-time audience shows until its activation's
        calculation (histories, then memberships) is complete; None once it is, or when
        it cannot be estimated (then its real size shows). Computed once per edit."""
        if not calculating(audience):
            return None
        key = (audience.id, audience.updated_ms)
        with self._lock:
            known = self._shown.get(key)
        if known is not None:
            return known
        try:
            found = self.estimate(audience)
        except InvalidBatch:
            return None
        with self._lock:
            self._shown = {k: v for k, v in self._shown.items() if k[0] != audience.id}
            self._shown[key] = found
        return found

    def size_of(self, audience: AudienceDef) -> AudienceSize:
        shown = self.while_calculating(audience)
        if shown is not None:
            return AudienceSize(size=shown.estimate, size_estimated=True, size_shown=shown.shown)
        counts = self._store.membership_counts(audience.id, self._clock.now_ms())
        real = counts.entered - counts.exited
        return AudienceSize(size=real, size_estimated=False, size_shown=f"{real:,}")

    def item(self, audience: AudienceDef) -> dict[str, object]:
        """The audience as the admin API and the CLI show it: its definition and its size."""
        shown: dict[str, object] = msgspec.to_builtins(audience)
        shown.update(msgspec.to_builtins(self.size_of(audience)))
        return shown

    def _estimable(self, audience: AudienceDef) -> CompiledAudience:
        if audience.kind != "real_time":
            raise InvalidBatch(
                "the estimator estimates real-time audiences; a standard audience's size"
                " is its calculation's",
                "kind",
            )
        check_settings(audience)
        target = self._registry.check(audience)
        # As saved now: a backfill's progress is saved without a new definitions version.
        saved = {a.id: a for a in self._store.list_audiences()} if target.nested else {}
        for nested in sorted(target.nested):
            inner = saved.get(nested)
            if inner is None or inner.status != "active":
                state = "deleted" if inner is None else inner.status
                raise InvalidBatch(
                    f"audience {nested} is {state}: it has no members to estimate from",
                    "criteria",
                )
            if calculating(inner) or (inner.kind == "standard" and inner.computed_ms is None):
                raise InvalidBatch(
                    f"audience {nested} is still being calculated: its members are not"
                    " known yet, so this definition cannot be estimated",
                    "criteria",
                )
        return target

    def _count(
        self, target: CompiledAudience, scope: str, tests: Sequence[Predicate], now: int
    ) -> _Counted:
        held = self._sample(scope)
        sample, live = held.sample, held.live
        histories = self._histories(target, held, now) if target.histories else None
        members = 0
        per_criterion = [0] * len(tests)
        for stored in live:
            profile = stored
            if histories is not None:
                profile = msgspec.structs.replace(
                    stored, event_times=histories.get(stored.mpid, {})
                )
            subject = Subject(
                profile, target.workspaces, now, dict.fromkeys(profile.memberships, True)
            )
            if not subject.seen():
                continue  # AUD-1: only profiles seen in the audience's workspaces count
            members += target.predicate(subject)
            for n, test in enumerate(tests):
                per_criterion[n] += test(subject)
        fraction = ScopeTally(0, sample.bound).fraction
        return _Counted(
            ScopeSample(scope=scope, profiles=len(live), fraction=round(fraction, 6)),
            sample.bound,
            members,
            per_criterion,
        )

    def sampled(self, scope: str) -> tuple[list[Profile], list[LogEntry]]:
        """The scope's sample (its live profiles) and their logged batches, as estimates
        read them and kept as long: what the builder's suggestions are drawn from."""
        held = self._sample(scope)
        return held.live, self._logged(held)

    def _logged(self, held: _Held) -> list[LogEntry]:
        """The held sample's logged batches: those a refresh read, else read once now."""
        if held.batches is not None:
            return [b.entry for b in held.batches]
        if held.log is None:
            held.log = self._store.log_for_profiles([p.mpid for p in held.live])
        return held.log

    def refresh(self) -> int:
        """Read again, in the background (a server's task every
        `audiences.estimate_refresh_s`), the sample and batches of each scope estimated
        within WARM_FOR_S (of every scope of the tenancy on the first run), so that
        estimates find them read: the batches' events already decoded are kept (a logged
        batch's body does not change). Scopes no longer asked are let go. Answers the
        number of scopes read."""
        at = time.monotonic()
        with self._lock:
            if not self._warmed:
                self._warmed = True
                for scope in self._registry.tenancy.accounts_by_scope():
                    self._asked.setdefault(scope, at)
            self._asked = {s: t for s, t in self._asked.items() if at - t < WARM_FOR_S}
            self._held = {s: h for s, h in self._held.items() if s in self._asked}
            scopes = sorted(self._asked)
            self._refreshes += 1
        for scope in scopes:
            self._read(scope, with_batches=True)
        return len(scopes)

    def _sample(self, scope: str) -> _Held:
        """The scope's sample as read at most `kept_s` ago, or read now."""
        at = time.monotonic()
        with self._lock:
            self._asked[scope] = at
            held = self._held.get(scope)
        if held is not None and at - held.read_at < self._kept_s:
            return held
        return self._read(scope, with_batches=False)

    def _read(self, scope: str, *, with_batches: bool) -> _Held:
        """The scope's sample read now (and its batches, `with_batches`), kept for the
        estimates to come unless a newer read was kept meanwhile."""
        at = time.monotonic()
        with self._lock:
            before = self._held.get(scope)
        previous = before.sample if before is not None else None
        sample = self._store.sample_profiles(scope, self._sample_size, previous)
        held = _Held(at, sample, [p for p in sample.profiles if p.merged_into is None])
        if with_batches:
            self._pause()
            held.batches = self._decoded(held, before)
        with self._lock:
            kept = self._held.get(scope)
            if kept is None or kept.read_at <= at:
                self._held[scope] = held
        return held

    def _decoded(self, held: _Held, before: _Held | None) -> list[DecodedBatch]:
        """The applied batches of the held sample's profiles, oldest first, each decoded
        (or, read before with the same body, as decoded then: its status and MPID are
        read anew, a merge moves a batch). Those of a profile stored as it was at the last
        read are kept as read then, except on its turn (REREAD_EVERY)."""
        earlier = (before.batches if before is not None else None) or []
        kept = _unchanged(held, before, self._refreshes % REREAD_EVERY)
        found = [b for b in earlier if b.entry.mpid in kept]
        known = {b.entry.id: b for b in earlier if b.entry.id is not None}
        mpids = [p.mpid for p in held.live if p.mpid not in kept]
        for start in range(0, len(mpids), REFRESH_SLICE):
            if start:
                self._pause()
            for entry in self._store.log_for_profiles(mpids[start : start + REFRESH_SLICE]):
                if entry.status != BatchStatus.APPLIED or entry.mpid is None:
                    continue
                old = known.get(entry.id) if entry.id is not None else None
                if old is not None and old.entry.body == entry.body:
                    found.append(DecodedBatch(entry, old.lowered, old.events))
                else:
                    found.append(decoded_batch(entry))
        found.sort(key=lambda batch: batch.entry.id or 0)
        return found

    def _histories(
        self, target: CompiledAudience, held: _Held, now: int
    ) -> dict[int, dict[str, list[int]]]:
        """Each sampled profile's histories for the audience, from its logged batches,
        as activation folds them (services.audiences.jobs: LogReading)."""
        some = histories_of(target.histories)
        found: dict[int, dict[str, list[int]]] = {}
        for entry, events in self._read_events(held, some):
            assert entry.mpid is not None
            found[entry.mpid] = fold_events(
                found.get(entry.mpid, {}), events, entry.input, some, now
            )
        return found

    def _read_events(self, held: _Held, some: Histories) -> list[_Events]:
        """The applied batches' events the histories may take, as LogReading reads them:
        chosen from the batches decoded by a refresh, else decoded from the batches read
        once with the sample and kept for the same inputs and event keys (what
        LogReading's choice depends on)."""
        reading = LogReading(some, self._registry.tenancy.input_named)
        if held.batches is not None:
            chosen = ((b.entry, reading.chosen(b)) for b in held.batches)
            return [(entry, events) for entry, events in chosen if events]
        key = (
            frozenset(i for spec in some.specs.values() for i in spec.inputs),
            frozenset(spec.event_key for spec in some.specs.values()),
        )
        known = held.events.get(key)
        if known is not None:
            return known
        read = []
        for entry in self._logged(held):
            if entry.status != BatchStatus.APPLIED or entry.mpid is None:
                continue
            events = reading.events(entry)
            if events:
                read.append((entry, events))
        held.events[key] = read
        return read


def calculating(audience: AudienceDef) -> bool:
    """An active real-time audience whose activation (or last edit) is still computing its
    histories or memberships over the stored profiles."""
    return (
        audience.status == "active"
        and audience.kind == "real_time"
        and (audience.history_from is not None or audience.backfill_scope is not None)
    )


def _top_level(node: Node) -> list[tuple[Node, bool]]:
    """The top-level criteria (the items of a top-level `and`/`or`, else the one
    criterion), each with whether it excludes: an exclusion's own criterion is counted."""
    items = node.items if isinstance(node, All | AnyOf) else (node,)
    return [(item.item, True) if isinstance(item, Exclude) else (item, False) for item in items]


def _written(criteria: dict[str, object], index: int, count: int) -> dict[str, object]:
    """The criterion as the definition writes it."""
    for key in ("and", "or"):
        items = criteria.get(key)
        if isinstance(items, list) and len(items) == count and len(criteria) == 1:
            item = items[index]
            return item if isinstance(item, dict) else {}
    return criteria


def _criterion(
    index: int, written: dict[str, object], excludes: bool, found: SizeEstimate
) -> CriterionEstimate:
    return CriterionEstimate(
        index=index,
        criterion=written,
        excludes=excludes,
        estimate=found.size,
        shown=found.shown,
        low=found.low,
        high=found.high,
        sampled_members=found.sampled_members,
    )
