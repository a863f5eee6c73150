"""Reading the event log for audience histories: which logged batches (and which of
their events) the histories may take, read as ingest read them (LogReading), each batch
decoded once for several readers (DecodedBatch), and a page of logged batches folded into
their profiles in log order (LogPage: a shadow edit's fold)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

import msgspec

from kindred.audiences.evaluate import event_key
from kindred.audiences.history import Histories, fold_taken, taken_times
from kindred.domain.errors import InvalidBatch
from kindred.domain.observation import EventFact
from kindred.domain.profile import Profile
from kindred.domain.stamps import decoded_stamps, stamp_type
from kindred.domain.tenancy import InputDef
from kindred.ports import LogEntry, UnitOfWork
from kindred.services.merges import follow
from kindred.wire.observe import EachEvent, observe_each_event, observe_events

__all__ = ["DecodedBatch", "LogPage", "LogReading", "decoded_batch"]


# How many event types and names one reading remembers whether its histories take.
_TYPES_TAKEN_BOUND = 10_000
_UNKNOWN = "\0unknown"  # not an answer `_taken_type` gives


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
        self._some = some
        self._taken = frozenset(i for spec in some.specs.values() for i in spec.inputs)
        self._inputs = inputs
        self._needles = _needles(some)
        self._holds = _holding(self._needles) if self._needles else None
        self._keys = frozenset(some.by_event_key)
        self._types_taken: dict[tuple[int | str, str | None], str | None] = {}
        self._keys_taken: dict[tuple[str, int | str, str | None], tuple[str, ...]] = {}
        # Histories that take events by key alone need only each event's stamp.
        self.reads_stamps = all(spec.test is None for spec in some.specs.values())

    def events(self, entry: LogEntry) -> tuple[EventFact, ...]:
        """The events of a logged batch the histories may take, read as ingest read them:
        none when the batch cannot hold one, its input is gone or its body no longer reads.
        From its event stamps when it has them and they are enough (`reads_stamps`): a
        fact then holds the event's type, name and time, all such a history reads."""
        if self.reads_stamps and entry.event_stamps is not None:
            if entry.input not in self._taken or self._inputs(entry.input) is None:
                return ()
            stamped = self._stamped(entry.event_stamps, entry.received_ms)
            if stamped is not None:
                return stamped
            # Stamps that do not read (another format): the body, when the read has it.
        lowered = entry.body.lower() if self._needles is not None and entry.body.isascii() else None
        may_hold, needles = self._choice(entry.input, lowered)
        if not may_hold:
            return ()
        wanted = self._holds if needles is not None else None
        try:
            return observe_events(entry.body, entry.received_ms, wanted)
        except (InvalidBatch, msgspec.DecodeError, msgspec.ValidationError):
            return ()

    def taken(self, logged: Iterable[LogEntry]) -> dict[str, list[int]]:
        """The times of the logged batches' events each history takes, by its key
        (`taken_times` of what `events` reads of each batch). A batch whose stamps are
        enough is read from them straight to the histories that take each of its
        events, with no fact made for it: the activation's fold of the stored events."""
        taken: dict[str, list[int]] = {}
        for entry in logged:
            if self.reads_stamps and entry.event_stamps is not None:
                if entry.input not in self._taken or self._inputs(entry.input) is None:
                    continue
                if self._stamp_times(entry.input, entry.event_stamps, entry.received_ms, taken):
                    continue
            _gather(taken, taken_times(self.events(entry), entry.input, self._some))
        return taken

    def _stamp_times(
        self, input_name: str, stamps: bytes, received_ms: int, taken: dict[str, list[int]]
    ) -> bool:
        """The batch's stamped events added to `taken`; False (nothing added) when the
        stamps do not read."""
        known = self._keys_taken
        found: list[tuple[tuple[str, ...], int]] = []
        try:
            for kind, name, before in decoded_stamps(stamps):
                keys = known.get((input_name, kind, name))
                if keys is None:
                    keys = self._keys_of(input_name, kind, name)
                if keys:
                    found.append((keys, received_ms - before))
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False
        for keys, at in found:
            for key in keys:
                taken.setdefault(key, []).append(at)
        return True

    def _keys_of(self, input_name: str, kind: int | str, name: str | None) -> tuple[str, ...]:
        """The keys of the histories that take a stamped event from `input_name` (as
        `taken_times` finds them for its fact), kept (up to a bound) for `_stamp_times`."""
        event_type = stamp_type(kind)
        fact = EventFact(event_type=event_type, name=name, timestamp_ms=0)
        keys = tuple(taken_times((fact,), input_name, self._some))
        if len(self._keys_taken) < _TYPES_TAKEN_BOUND:
            self._keys_taken[(input_name, kind, name)] = keys
        return keys

    def _stamped(self, stamps: bytes, received_ms: int) -> tuple[EventFact, ...] | None:
        known = self._types_taken
        try:
            facts = []
            for kind, name, before in decoded_stamps(stamps):
                # The type and name's answer looked up once, worked out the first time.
                event_type = known.get((kind, name), _UNKNOWN)
                if event_type is _UNKNOWN:
                    event_type = self._taken_type(kind, name)
                if event_type is not None:
                    at = received_ms - before
                    facts.append(EventFact(event_type=event_type, name=name, timestamp_ms=at))
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        return tuple(facts)

    def _taken_type(self, kind: int | str, name: str | None) -> str | None:
        """The type of a stamped event some history takes (None when none does), kept for
        each type and name (up to a bound: names may be many) for `_stamped` to find."""
        known = self._types_taken
        event_type = stamp_type(kind)
        keys = self._keys
        taken = event_type in keys or (name is not None and event_key(event_type, name) in keys)
        if len(known) < _TYPES_TAKEN_BOUND:
            known[(kind, name)] = event_type if taken else None
        return event_type if taken else None

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
    taken: dict[str, list[int]] = {}
    for entry in fresh:
        _gather(taken, taken_times(events[entry.id], entry.input, some))
    history = fold_taken(profile.event_times, taken, some, now_ms)
    last = fresh[-1].id or 0
    folded = {**profile.event_folded, **dict.fromkeys(some.specs, last)}
    return msgspec.structs.replace(profile, event_times=history, event_folded=folded)


def _gather(taken: dict[str, list[int]], more: dict[str, list[int]]) -> None:
    for key, times in more.items():
        taken.setdefault(key, []).extend(times)
