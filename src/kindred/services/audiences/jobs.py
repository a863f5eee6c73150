"""The audience work that runs in the background, in chunks of their own transactions: the
time-trigger scheduler (AUD-5) and the backfill of activated or edited audiences: first
their event histories from the stored events (AUD-16), then their memberships."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from kindred.attributes.active import scheduled
from kindred.audiences.compiled import CompiledAudience
from kindred.audiences.definition import INT64_MIN, AudienceDef, Selection
from kindred.audiences.history import Histories, fold_events, histories_of
from kindred.audiences.membership import evaluate_memberships
from kindred.audiences.prefilter import Held, needles
from kindred.domain.errors import InvalidBatch
from kindred.domain.expiry import EXPIRED_CHANGE, TtlRules, due_by_expiry, without_expired
from kindred.domain.observation import EventFact
from kindred.domain.profile import Profile
from kindred.domain.tenancy import InputDef
from kindred.ports import (
    AudienceStore,
    BatchStatus,
    Clock,
    ConcurrentUpdate,
    EventLogReader,
    LogEntry,
    Needles,
    UnitOfWork,
)
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.calculated.registry import CalculatedRegistry
from kindred.services.forwarding.transactions import Transactions
from kindred.services.merges import follow
from kindred.wire.observe import EachEvent, observe_each_event, observe_events

__all__ = [
    "AudienceBackfill",
    "AudienceScheduler",
    "DecodedBatch",
    "LogPage",
    "LogReading",
    "decoded_batch",
    "nesting_of",
    "next_scope",
]


class _Store(AudienceStore, EventLogReader, Protocol):
    """The definitions, whose progress the backfill keeps, and the event log it reads."""


class AudienceScheduler:
    """Re-evaluates the profiles whose due time has come (AUD-5): "last 7 days" windows
    closing, frequencies falling as events age out, without any new event. A chunk per
    transaction; safe in several processes (claimed rows are skipped elsewhere)."""

    def __init__(
        self,
        store: AudienceStore,
        transactions: Transactions,
        registry: AudienceRegistry,
        clock: Clock,
        *,
        chunk: int = 500,
        calculated: CalculatedRegistry | None = None,
    ):
        """`calculated`: recompute calculated values too (windows decay on the same due
        time)."""
        self._calculated = calculated
        self._store = store
        self._transactions = transactions
        self._registry = registry
        self._clock = clock
        self._chunk = chunk

    def run(self) -> int:
        """Re-evaluate every due profile; returns how many membership changes it made."""
        now = self._clock.now_ms()
        changed = 0
        while True:
            try:
                done, moved = self._chunk_once(now)
            except ConcurrentUpdate:
                continue  # a batch updated a claimed profile: read the chunk again
            changed += moved
            if done < self._chunk:
                return changed

    def _chunk_once(self, now: int) -> tuple[int, int]:
        with self._transactions.begin() as uow:
            # The definitions as of this transaction: recomputing drops the states of
            # those it does not know (deleted), and must not drop a new one's.
            version = uow.definitions_version()
            active = self._registry.at(version).active
            due = uow.profiles.due(now, self._chunk)
            moved = 0
            ttls = self._registry.tenancy.attribute_ttls
            for profile in due:
                # Values whose time to live ran out (RET-4) are gone from here on: the
                # profile is stored without them.
                current, expired = without_expired(profile, ttls, now)
                if self._calculated is not None:
                    current = self._calculated.recompute(current, now, version=version)
                reason = EXPIRED_CHANGE if expired else "time"
                after, moves = evaluate_memberships(current, active, None, now, reason=reason)
                if after is current:
                    after = msgspec.structs.replace(current, audience_due_ms=None)
                if self._calculated is not None:
                    after = scheduled(after, now)
                after = due_by_expiry(after, ttls, now)
                uow.profiles.save(msgspec.structs.replace(after, version=profile.version + 1))
                if moves:
                    uow.memberships.append(moves)
                    moved += len(moves)
        return len(due), moved


class AudienceBackfill:
    """Computes an activated (or edited) audience over the profiles that already exist,
    in the background, resuming where it stopped (the cursors are kept on the definition).

    First its event histories: the event log up to the activation's last batch
    (`history_to`), a page at a time, each page's events folded into their profiles
    (followed through merges) in one transaction; each profile keeps how far it has been
    folded (`event_folded`), so a page done again is not counted twice. The histories are
    the audience's own (their keys carry its activation), and every batch logged after
    `history_to` is recorded by the writer that applies it, so none is lost or counted
    twice. Meanwhile nothing evaluates the audience (it is `warming`).

    Then its memberships, a chunk of profiles per transaction. Live batches go on
    meanwhile: both evaluate the profile's current state in their own transaction, so
    nothing is lost or counted twice."""

    def __init__(
        self,
        store: _Store,
        transactions: Transactions,
        registry: AudienceRegistry,
        clock: Clock,
        *,
        chunk: int = 500,
        chunks_per_run: int = 40,
        set_chunk: int = 20_000,
        log_page: int = 2_000,
    ) -> None:
        self._store = store
        self._transactions = transactions
        self._registry = registry
        self._clock = clock
        self._chunk = chunk
        self._chunks_per_run = chunks_per_run
        self._set_chunk = set_chunk
        self._log_page = log_page

    def run(self) -> int:
        """Advance every pending backfill by up to `chunks_per_run` chunks; returns how
        many profiles it evaluated."""
        evaluated = 0
        for audience in self._store.list_audiences():
            if audience.status == "active" and audience.backfill_scope is not None:
                evaluated += self._advance(audience)
        return evaluated

    def _advance(self, audience: AudienceDef) -> int:
        active = self._registry.current().active  # activated a moment ago, maybe elsewhere
        target = next((a for a in active if a.id == audience.id), None)
        if target is None or (target.warming and audience.history_from is None):
            return 0
        if audience.history_from is not None:
            folded = self._fold_history(audience, target)
            if folded is None:
                return 0  # histories not complete yet (or the audience changed meanwhile)
            return self._advance(folded)  # now evaluated everywhere: its memberships
        affected = nesting_of(target.id, active)
        wanted = _backfill_needles(target, affected)
        scopes = sorted(target.scopes)
        saved_scope = audience.backfill_scope or ""
        scope: str | None = saved_scope
        start = INT64_MIN if audience.backfill_from is None else audience.backfill_from
        if saved_scope not in scopes:
            scope, start = next_scope(scopes, saved_scope), INT64_MIN
        # An audience that time does not move and no other audience nests is computed by
        # the store in SQL, a page at a time; the others profile by profile.
        set_based = not target.timed and affected == {target.id}
        size = self._set_chunk if set_based else self._chunk
        evaluated = 0
        for _ in range(self._chunks_per_run):
            if scope is None:
                break
            if not self._unchanged(audience):
                return evaluated  # deactivated or edited meanwhile: that change decides
            if set_based:
                page = self._select_once(target, scope, start)
            else:
                page = self._chunk_once(target.id, scope, start, active, (affected, wanted))
            if page is None:
                break  # no way through (batches kept colliding, or stopped): resume here
            count, last = page
            evaluated += count
            if count == size:
                start = last + 1
            else:
                scope, start = next_scope(scopes, scope), INT64_MIN
        self._save(audience, scope, start, evaluated)
        return evaluated

    def _fold_history(self, audience: AudienceDef, target: CompiledAudience) -> AudienceDef | None:
        """Advance the fold of the stored events into the audience's histories by up to
        `chunks_per_run` pages of the log; the audience as saved once it is complete."""
        some = histories_of(target.histories)
        after = audience.history_from or 0
        finished = not target.histories or after >= audience.history_to
        for _ in range(self._chunks_per_run):
            if finished:
                break
            entries = self._store.read_log(after, self._log_page)
            wanted = [
                e
                for e in entries
                if e.id is not None
                and e.id <= audience.history_to
                and e.status == BatchStatus.APPLIED
                and e.mpid is not None
            ]
            if wanted and not self._fold_page(audience, target, some, wanted):
                return None  # changed meanwhile, or batches kept colliding: resume later
            after = (entries[-1].id or after) if entries else after
            finished = len(entries) < self._log_page or after >= audience.history_to
        current = self._same_fold(audience)
        if current is None:
            return None
        if not finished:
            self._store.save_audience(
                msgspec.structs.replace(current, history_from=after), progress=True
            )
            return None
        # Complete: a new version, so that every process starts evaluating it.
        return self._store.save_audience(
            msgspec.structs.replace(current, history_from=None), progress=not target.warming
        )

    def _same_fold(self, audience: AudienceDef) -> AudienceDef | None:
        current = next((a for a in self._store.list_audiences() if a.id == audience.id), None)
        if (
            current is None
            or current.status != "active"
            or current.updated_ms != audience.updated_ms
            or current.history_from != audience.history_from
        ):
            return None  # edited, deactivated or advanced elsewhere: that run carries on
        return current

    def _fold_page(
        self,
        audience: AudienceDef,
        target: CompiledAudience,
        some: Histories,
        entries: list[LogEntry],
    ) -> bool:
        """Fold a page of logged batches into their profiles' histories, in one
        transaction; False when the audience changed meanwhile or batches kept colliding."""
        page = LogPage.of(entries, some, self._registry.tenancy.input_named)
        for _ in range(5):
            try:
                with self._transactions.begin() as uow:
                    uow.definitions_version()  # PostgreSQL: a definition saved waits for us
                    if not self._unchanged(audience):
                        return False
                    page.fold(uow, target.scopes, some, self._clock.now_ms())
                return True
            except ConcurrentUpdate:
                continue  # a batch changed one of them meanwhile: fold the page again
        return False

    def _unchanged(self, audience: AudienceDef) -> bool:
        """Still active and not edited since this run read it."""
        current = next((a for a in self._store.list_audiences() if a.id == audience.id), None)
        return (
            current is not None
            and current.status == "active"
            and current.updated_ms == audience.updated_ms
        )

    def _chunk_once(
        self,
        target_id: int,
        scope: str,
        start: int,
        active: Sequence[CompiledAudience],
        which: tuple[frozenset[int], Needles | None],
    ) -> tuple[int, int] | None:
        affected, wanted = which
        now = self._clock.now_ms()
        ttls = self._registry.tenancy.attribute_ttls
        for _ in range(5):
            try:
                with self._transactions.begin() as uow:
                    if not uow.memberships.audience_active(target_id):
                        return None  # deactivated: its members are being removed
                    page = uow.profiles.page(scope, start, self._chunk, wanted)
                    for profile in page:
                        self._evaluate(uow, profile, active, affected, now=now, ttls=ttls)
                return len(page), page[-1].mpid if page else start
            except ConcurrentUpdate:
                continue  # a batch changed one of them meanwhile: read the chunk again
        return None

    def _select_once(
        self, target: CompiledAudience, scope: str, start: int
    ) -> tuple[int, int] | None:
        now = self._clock.now_ms()
        selection = Selection(
            criteria=target.node, scope=scope, workspace_ids=target.workspaces, now_ms=now
        )
        for _ in range(5):
            try:
                with self._transactions.begin() as uow:
                    page = uow.memberships.apply_selection(
                        selection, target.membership(now), start, self._set_chunk, "backfill"
                    )
                if page.stopped:
                    return None
                return page.read, page.last_mpid if page.last_mpid is not None else start
            except ConcurrentUpdate:
                continue  # a batch changed one of them meanwhile: select the page again
        return None

    @staticmethod
    def _evaluate(
        uow: UnitOfWork,
        profile: Profile,
        active: Sequence[CompiledAudience],
        affected: frozenset[int],
        *,
        now: int,
        ttls: dict[int, TtlRules],
    ) -> None:
        if profile.merged_into is not None:
            return
        # Evaluated without the values expired by now; the stored profile keeps them for
        # the expiry sweep, which evaluates every audience reading them (this evaluates a
        # few).
        view, _ = without_expired(profile, ttls, now)
        after, moves = evaluate_memberships(view, active, None, now, "backfill", restrict=affected)
        if after is not view:
            kept = msgspec.structs.replace(
                profile,
                memberships=after.memberships,
                audience_due_ms=after.audience_due_ms,
                version=profile.version + 1,
            )
            uow.profiles.save(kept)
            if moves:
                uow.memberships.append(moves)

    def _save(self, audience: AudienceDef, scope: str | None, start: int, done: int) -> None:
        current = next((a for a in self._store.list_audiences() if a.id == audience.id), None)
        if (
            current is None
            or current.backfill_from != audience.backfill_from
            or current.updated_ms != audience.updated_ms
        ):
            return  # edited or advanced elsewhere meanwhile: that run carries on
        self._store.save_audience(
            msgspec.structs.replace(
                current,
                backfill_scope=scope,
                backfill_from=None if scope is None else start,
                backfill_done=current.backfill_done + done,
                backfill_finished_ms=self._clock.now_ms() if scope is None else None,
            ),
            progress=True,
        )


def _needles(some: Histories) -> tuple[bytes, ...] | None:
    """Text a batch's body must hold (lower-cased) for one of its events to count: the
    name of every history's events; None when a history takes events of a type whatever
    their name, or a name's JSON text may be spelled otherwise: a character beyond ASCII,
    or one JSON escapes (`"`, `\\`, `/`, a control character) (every batch is read then)."""
    names = []
    for spec in some.specs.values():
        _, _, name = spec.event_key.partition(":")
        if not name or not name.isascii() or any(c in '"\\/' or c < " " for c in name):
            return None
        names.append(name.encode())
    return tuple(set(names))


class LogReading:
    """What of a page's logged batches the histories may take, and its reader: a batch
    from one of their inputs, whose text may hold one of their events' names (`needles`,
    see _needles: ASCII letters lower-cased as the names are). A body with an escape or a
    character beyond ASCII, which may spell one otherwise (the Kelvin sign lowers to k), is
    read whole; of the others only the events whose own text holds a name are decoded."""

    def __init__(self, some: Histories, inputs: Callable[[str], InputDef | None]) -> None:
        self._taken = frozenset(i for spec in some.specs.values() for i in spec.inputs)
        self._inputs = inputs
        self._needles = _needles(some)
        self._holds = _holding(self._needles) if self._needles else None

    def events(self, entry: LogEntry) -> tuple[EventFact, ...]:
        """The events of a logged batch the histories may take, read as ingest read them:
        none when the batch cannot hold one, its input is gone or its body no longer reads."""
        lowered = entry.body.lower() if self._needles is not None and entry.body.isascii() else None
        may_hold, needles = self._choice(entry.input, lowered)
        if not may_hold:
            return ()
        wanted = self._holds if needles is not None else None
        try:
            return observe_events(entry.body, entry.received_ms, wanted)
        except (InvalidBatch, msgspec.DecodeError, msgspec.ValidationError):
            return ()

    def chosen(self, batch: DecodedBatch) -> tuple[EventFact, ...]:
        """What `events` answers for the batch, from its events decoded beforehand (each
        event's text lower-cased already: the test `events` makes of it, without calls)."""
        may_hold, needles = self._choice(batch.entry.input, batch.lowered)
        if not may_hold or batch.events is None:
            return ()
        facts = []
        only = needles[0] if needles is not None and len(needles) == 1 else None
        for text, fact in batch.events:
            if only is not None:
                if only not in text:
                    continue
            elif needles is not None and not any(needle in text for needle in needles):
                continue
            if fact is None:
                return ()  # observe_events raises on it: the batch no longer reads
            facts.append(fact)
        return tuple(facts)

    def _choice(
        self, input_name: str, lowered: bytes | None
    ) -> tuple[bool, tuple[bytes, ...] | None]:
        """Whether a batch from `input_name` (its body lower-cased when ASCII) may hold an
        event the histories take, and the names its events' text (lower-cased) must hold
        to be read (None: every event is read)."""
        if input_name not in self._taken or self._inputs(input_name) is None:
            return False, None
        if self._needles is None or lowered is None:
            return True, None
        if b"\\u" in lowered:
            return True, None  # an escape may spell a name: every event is read
        if not any(needle in lowered for needle in self._needles):
            return False, None
        return True, self._needles


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """A logged batch with its events decoded once, whatever the histories that will read
    it (LogReading.chosen picks theirs): its body lower-cased when ASCII (None otherwise),
    and each event's text, lower-cased, and fact (`events` None: the body does not
    read)."""

    entry: LogEntry
    lowered: bytes | None
    events: tuple[EachEvent, ...] | None


def decoded_batch(entry: LogEntry) -> DecodedBatch:
    lowered = entry.body.lower() if entry.body.isascii() else None
    try:
        each = observe_each_event(entry.body, entry.received_ms)
        events: tuple[EachEvent, ...] | None = tuple((text.lower(), f) for text, f in each)
    except (InvalidBatch, msgspec.DecodeError, msgspec.ValidationError):
        events = None
    return DecodedBatch(entry, lowered, events)


def _holding(needles: tuple[bytes, ...]) -> Callable[[bytes], bool]:
    """Whether an event's (ASCII) text holds one of the names, lower-cased."""
    if len(needles) == 1:
        needle = needles[0]
        return lambda text: needle in text.lower()
    return lambda text: any(needle in text.lower() for needle in needles)


@dataclass(frozen=True, slots=True)
class LogPage:
    """A page of logged batches to fold into their profiles' histories (an activation's
    fold, a shadow edit's): the batches by profile, and the events of each the histories
    may take, read once before the transaction (a retried one reads them again)."""

    by_mpid: dict[int, list[LogEntry]]
    events: dict[int | None, tuple[EventFact, ...]]

    @classmethod
    def of(
        cls, entries: list[LogEntry], some: Histories, input_named: Callable[[str], InputDef | None]
    ) -> LogPage:
        by_mpid: dict[int, list[LogEntry]] = {}
        for entry in entries:
            assert entry.mpid is not None
            by_mpid.setdefault(entry.mpid, []).append(entry)
        reading = LogReading(some, input_named)
        return cls(by_mpid, {e.id: reading.events(e) for e in entries})

    def fold(self, uow: UnitOfWork, scopes: Collection[str], some: Histories, now: int) -> None:
        """Into the transaction's profiles (a merged one's into its survivor, one in none
        of `scopes` left alone), saving each that changed."""
        loaded = uow.profiles.load(sorted(self.by_mpid))
        survivors: dict[int, tuple[Profile, list[LogEntry]]] = {}
        for mpid, logged in self.by_mpid.items():
            profile = follow(uow.profiles, loaded.get(mpid))
            if profile is None or profile.scope not in scopes:
                continue
            survivors.setdefault(profile.mpid, (profile, []))[1].extend(logged)
        for profile, logged in survivors.values():
            after = _folded(profile, some, logged, self.events, now)
            if after is not profile:
                uow.profiles.save(msgspec.structs.replace(after, version=profile.version + 1))


def _folded(
    profile: Profile,
    some: Histories,
    logged: list[LogEntry],
    events: dict[int | None, tuple[EventFact, ...]],
    now_ms: int,
) -> Profile:
    """The profile with the logged batches its histories have not folded yet folded in."""
    done = min(profile.event_folded.get(key, 0) for key in some.specs)
    fresh = sorted((e for e in logged if (e.id or 0) > done), key=lambda e: e.id or 0)
    if not fresh:
        return profile
    by_input: dict[str, list[EventFact]] = {}
    for entry in fresh:
        by_input.setdefault(entry.input, []).extend(events[entry.id])
    history = profile.event_times
    for input_name, facts in by_input.items():
        history = fold_events(history, facts, input_name, some, now_ms)
    last = fresh[-1].id or 0
    folded = {**profile.event_folded, **dict.fromkeys(some.specs, last)}
    return msgspec.structs.replace(profile, event_times=history, event_folded=folded)


def _backfill_needles(target: CompiledAudience, affected: frozenset[int]) -> Needles | None:
    """What a profile's document must contain for the backfill to have anything to do:
    to match the criteria, or to hold the membership already (to leave). Only for an
    audience no other active audience nests (those would need their own)."""
    if affected != {target.id}:
        return None
    criteria = needles(target.node)
    if criteria is None:
        return None
    return ("or", [criteria, Held(target.id)])


def next_scope(scopes: Sequence[str], after: str | None) -> str | None:
    """The first scope after `after` (the first of all for None)."""
    later = [s for s in scopes if after is None or s > after]
    return later[0] if later else None


def nesting_of(audience_id: int, active: Sequence[CompiledAudience]) -> frozenset[int]:
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
