"""Retention (RET-1, RET-2) and per-attribute expiry (RET-4), in the background, a chunk
per transaction.

The lifetime sweep deletes the profiles that aged out (not updated within their account's
lifetime), with their identity links, as an erasure does (services.privacy.erasure): each
membership ends with an exit in the membership log (reason "expired"), which forwarding
sends to the audience's connections as a removal carrying the identities it needs; the
audience's size counts it. The event log is kept (the event retention prunes it).

Safe to run in many processes at once: each chunk claims its rows (PostgreSQL skips rows
another sweep holds; SQLite has one writer), deletes only a profile still at the version it
read (an update in between wins, and the profile lives on), and commits on its own, so a
sweep cut short loses nothing and the next run carries on where it stopped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping

import msgspec

from kindred.attributes.active import ActiveSet, fold_events, scheduled
from kindred.attributes.definition import Compiled
from kindred.audiences.definition import INT64_MIN, MembershipChange
from kindred.audiences.membership import evaluate_memberships
from kindred.audiences.prefilter import Has
from kindred.domain.calculated_entries import with_values
from kindred.domain.expiry import EXPIRED_CHANGE, TtlRules, due_by_expiry, without_expired
from kindred.domain.lifetime import DAY_MS, expired_before_ms
from kindred.domain.profile import Profile
from kindred.domain.tenancy import Tenancy
from kindred.ports import (
    BatchStatus,
    Clock,
    ConcurrentUpdate,
    EventLogReader,
    Needles,
    UnitOfWork,
)
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.calculated.jobs import logged_events
from kindred.services.calculated.registry import CalculatedRegistry
from kindred.services.forwarding.transactions import Transactions
from kindred.services.merges import follow
from kindred.services.privacy.subjects import SubjectFinder

__all__ = [
    "EXPIRED",
    "AttributeExpirySweep",
    "EventRetention",
    "EventsReport",
    "ExpiryReport",
    "LifetimeSweep",
    "Retention",
    "RetentionReport",
    "SweepReport",
]

replace = msgspec.structs.replace
_PROFILE_LOG_LIMIT = 100_000

log = logging.getLogger("kindred.retention")

EXPIRED = "expired"  # the reason of the membership exits the lifetime sweep writes
# Key text JSON writes as it is (no escapes), so a substring test on the document is exact.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9 _.@:$-]+")
_ATTEMPTS = 5


class SweepReport(msgspec.Struct, kw_only=True):
    deleted: int = 0
    # identity scope -> profiles deleted there
    by_scope: dict[str, int] = msgspec.field(default_factory=dict)
    # memberships the deleted profiles left (an exit each, sent as removals)
    exits: int = 0


class LifetimeSweep:
    def __init__(
        self,
        transactions: Transactions,
        tenancy: Tenancy,
        clock: Clock,
        *,
        chunk: int = 500,
        on_deleted: Callable[[int], None] | None = None,
        on_exits: Callable[[int], None] | None = None,
    ) -> None:
        self._transactions = transactions
        self._tenancy = tenancy
        self._clock = clock
        self._chunk = chunk
        self._on_deleted = on_deleted
        self._on_exits = on_exits

    def run(self, progress: Callable[[SweepReport], None] | None = None) -> SweepReport:
        """Delete every profile past its lifetime as of now; `progress` is told the report
        after each chunk."""
        report = SweepReport()
        now = self._clock.now_ms()
        for scope, account in sorted(self._tenancy.accounts_by_scope().items()):
            cutoff = expired_before_ms(account, now)
            while True:
                deleted, exits = self._chunk_with_retries(scope, cutoff)
                if deleted:
                    report.by_scope[scope] = report.by_scope.get(scope, 0) + deleted
                    report.deleted += deleted
                    report.exits += exits
                    if self._on_deleted is not None:
                        self._on_deleted(deleted)
                    if self._on_exits is not None and exits:
                        self._on_exits(exits)
                    if progress is not None:
                        progress(report)
                if deleted < self._chunk:
                    break
        return report

    def _chunk_with_retries(self, scope: str, cutoff: int) -> tuple[int, int]:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return self._chunk_once(scope, cutoff)
            except ConcurrentUpdate:
                # A profile was updated (so it lives on) or taken by another sweep: the next
                # attempt reads afresh and no longer sees it as expired.
                log.debug("sweep chunk in %s collided (attempt %d)", scope, attempt)
        return 0, 0

    def _chunk_once(self, scope: str, cutoff: int) -> tuple[int, int]:
        now = self._clock.now_ms()
        erased: dict[int, Profile] = {}
        with self._transactions.begin(erased) as uow:
            expired = uow.profiles.expired(scope, cutoff, self._chunk)
            exits = [
                MembershipChange(
                    audience_id=audience_id, mpid=p.mpid, entered=False, at_ms=now, reason=EXPIRED
                )
                for p in expired
                for audience_id in sorted(p.memberships)
            ]
            for profile in expired:
                erased[profile.mpid] = profile
                uow.profiles.delete(profile)
            if exits:
                uow.memberships.append(exits)
        return len(expired), len(exits)


class EventsReport(msgspec.Struct, kw_only=True):
    # batches deleted from the event log
    pruned: int = 0
    # account id -> batches deleted of its workspaces
    by_account: dict[str, int] = msgspec.field(default_factory=dict)
    # profiles whose calculated attributes were computed again without the pruned batches
    recomputed: int = 0


class ExpiryReport(msgspec.Struct, kw_only=True):
    # attribute values removed past their time to live
    removed: int = 0
    # profiles stored again without them
    profiles: int = 0
    # workspace id -> values removed there
    by_workspace: dict[str, int] = msgspec.field(default_factory=dict)
    # memberships ended because a value they read expired (an exit each, sent as removals)
    exits: int = 0


class RetentionReport(msgspec.Struct, kw_only=True):
    profiles: SweepReport
    events: EventsReport
    attributes: ExpiryReport = msgspec.field(default_factory=ExpiryReport)


class AttributeExpirySweep:
    """Per-attribute expiry (RET-4, BEY-7): attribute values past their workspace's time to
    live are removed from the stored profiles, whose audience memberships are evaluated
    again without them; each membership that depended on one ends with an exit (reason
    `attribute_expired`), which forwarding sends to the audience's connections as a
    removal, and which the audience's size counts.

    Reads never wait for it: every read leaves an expired value out from its expiry instant
    on (domain.expiry), and a batch or the audience scheduler (due at the next expiry)
    stores a profile without them. The sweep is the rest: profiles nothing touched since,
    and those stored before a rule was configured.

    It walks each identity scope holding a workspace with rules, a page of profiles by MPID
    per transaction (a store that can leave out documents without a key the rules name
    does). Safe in several processes: a profile is saved only at the version read, so a
    collision reads the page again, and a profile another sweep has cleaned has nothing
    left to expire, so no exit is written twice."""

    def __init__(
        self,
        transactions: Transactions,
        audiences: AudienceRegistry,
        tenancy: Tenancy,
        clock: Clock,
        *,
        calculated: CalculatedRegistry | None = None,
        chunk: int = 500,
        on_removed: Callable[[int], None] | None = None,
        on_exits: Callable[[int], None] | None = None,
    ) -> None:
        self._transactions = transactions
        self._audiences = audiences
        self._calculated = calculated
        self._tenancy = tenancy
        self._clock = clock
        self._chunk = chunk
        self._on_removed = on_removed
        self._on_exits = on_exits

    def run(self, progress: Callable[[ExpiryReport], None] | None = None) -> ExpiryReport:
        """Remove every value expired as of now; `progress` is told the report after each
        chunk that removed any."""
        report = ExpiryReport()
        ttls = self._tenancy.attribute_ttls
        if not ttls:
            return report
        now = self._clock.now_ms()
        wanted = _key_needles(ttls)
        scopes = {self._tenancy.workspaces[w].identity_scope for w in ttls}
        for scope in sorted(scopes):
            start = INT64_MIN
            while True:
                read, last, done = self._chunk_with_retries(scope, start, now, wanted)
                if done.removed:
                    self._count(report, done)
                    if progress is not None:
                        progress(report)
                if read < self._chunk:
                    break
                start = last + 1
        return report

    def _count(self, report: ExpiryReport, done: ExpiryReport) -> None:
        report.removed += done.removed
        report.profiles += done.profiles
        report.exits += done.exits
        for workspace, n in done.by_workspace.items():
            report.by_workspace[workspace] = report.by_workspace.get(workspace, 0) + n
        if self._on_removed is not None:
            self._on_removed(done.removed)
        if self._on_exits is not None and done.exits:
            self._on_exits(done.exits)

    def _chunk_with_retries(
        self, scope: str, start: int, now: int, wanted: Needles | None
    ) -> tuple[int, int, ExpiryReport]:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return self._chunk_once(scope, start, now, wanted)
            except ConcurrentUpdate:
                # A batch or another sweep saved one of the page's profiles: read it again.
                log.debug("expiry chunk in %s collided (attempt %d)", scope, attempt)
        # Busy: the scope's walk stops here and the next run starts it again.
        log.warning("expiry sweep of %s left for the next run: its pages kept changing", scope)
        return 0, start, ExpiryReport()

    def _chunk_once(
        self, scope: str, start: int, now: int, wanted: Needles | None
    ) -> tuple[int, int, ExpiryReport]:
        done = ExpiryReport()
        ttls = self._tenancy.attribute_ttls
        with self._transactions.begin() as uow:
            version = uow.definitions_version()
            active = self._audiences.at(version).active
            page = uow.profiles.page(scope, start, self._chunk, wanted)
            for profile in page:
                if profile.merged_into is not None:
                    continue
                view, expired = without_expired(profile, ttls, now)
                if not expired:
                    continue
                if self._calculated is not None:
                    view = self._calculated.recompute(view, now, version=version)
                after, moves = evaluate_memberships(view, active, None, now, EXPIRED_CHANGE)
                if self._calculated is not None:
                    after = scheduled(after, now)
                after = due_by_expiry(after, ttls, now)
                uow.profiles.save(replace(after, version=profile.version + 1))
                if moves:
                    uow.memberships.append(moves)
                done.profiles += 1
                done.removed += len(expired)
                done.exits += sum(1 for m in moves if not m.entered)
                for change in expired:
                    key = str(change.workspace_id)
                    done.by_workspace[key] = done.by_workspace.get(key, 0) + 1
        return len(page), page[-1].mpid if page else start, done


def _key_needles(ttls: Mapping[int, TtlRules]) -> Needles | None:
    """Text a document holding a value some rule names must contain: each rule's key up
    to its first wildcard, quoted as JSON writes a key (None when a rule starts with a
    wildcard or holds text JSON may escape: every profile is read)."""
    branches: list[Needles] = []
    for rules in ttls.values():
        for rule in rules.rules:
            head = re.split(r"[*?]", rule.pattern, maxsplit=1)[0]
            if not head or not _PLAIN_KEY.fullmatch(head):
                return None
            whole = head == rule.pattern
            branches.append(Has(f'"{head}"' if whole else f'"{head}'))
    return branches[0] if len(branches) == 1 else ("or", branches)


class EventRetention:
    """The event retention: batches received before their account's data retention period
    are deleted from the event log, a chunk per transaction, oldest first. The profiles
    they were applied to have their calculated attributes whose window reaches that far
    (lifetime, since a date, or more days than the retention) computed again, in the same
    transaction, from the batches left (and only from events inside the period), so a pruned
    event no longer counts; they are then due for the audience scheduler, which evaluates
    their memberships again. (Audiences never count an event older than the retention
    period: their lookback is capped by it, see audiences.compiled.)

    Safe in several processes: PostgreSQL hands each chunk's entries to one transaction
    (the others skip them); a profile is saved only at the version read, so a batch applied
    meanwhile makes the chunk run again from a fresh read."""

    def __init__(
        self,
        transactions: Transactions,
        log: EventLogReader,
        subjects: SubjectFinder,
        calculated: CalculatedRegistry,
        tenancy: Tenancy,
        *,
        clock: Clock,
        chunk: int = 500,
        on_pruned: Callable[[int], None] | None = None,
        on_recomputed: Callable[[int], None] | None = None,
    ) -> None:
        self._transactions = transactions
        self._log = log
        self._subjects = subjects
        self._calculated = calculated
        self._tenancy = tenancy
        self._clock = clock
        self._chunk = chunk
        self._on_pruned = on_pruned
        self._on_recomputed = on_recomputed

    def run(self, progress: Callable[[EventsReport], None] | None = None) -> EventsReport:
        """Delete every logged batch received before its account's retention period;
        `progress` is told the report after each chunk."""
        report = EventsReport()
        now = self._clock.now_ms()
        accounts: dict[int, tuple[int, list[int]]] = {}
        for workspace in self._tenancy.workspaces.values():
            days = workspace.account.retention_days
            held = accounts.setdefault(workspace.account.account_id, (days, []))
            held[1].append(workspace.workspace_id)
        for account_id, (days, workspaces) in sorted(accounts.items()):
            cutoff = now - days * DAY_MS
            while True:
                pruned, recomputed = self._chunk_with_retries(sorted(workspaces), cutoff, now)
                if pruned:
                    key = str(account_id)
                    report.by_account[key] = report.by_account.get(key, 0) + pruned
                    report.pruned += pruned
                    report.recomputed += recomputed
                    if self._on_pruned is not None:
                        self._on_pruned(pruned)
                    if self._on_recomputed is not None and recomputed:
                        self._on_recomputed(recomputed)
                    if progress is not None:
                        progress(report)
                if pruned < self._chunk:
                    break
        return report

    def _chunk_with_retries(self, workspaces: list[int], cutoff: int, now: int) -> tuple[int, int]:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return self._chunk_once(workspaces, cutoff, now)
            except ConcurrentUpdate:
                log.debug("event retention chunk collided (attempt %d)", attempt)
        return 0, 0

    def _chunk_once(self, workspaces: list[int], cutoff: int, now: int) -> tuple[int, int]:
        with self._transactions.begin() as uow:
            version = uow.definitions_version()
            aged = uow.log.aged(workspaces, cutoff, self._chunk)
            if not aged:
                return 0, 0
            ids = [entry_id for entry_id, _ in aged]
            mpids = sorted({mpid for _, mpid in aged if mpid is not None})
            recomputed = self._recompute(uow, version, mpids, set(ids), cutoff=cutoff, now=now)
            uow.log.delete(ids)
        return len(aged), recomputed

    def _recompute(
        self,
        uow: UnitOfWork,
        version: int,
        mpids: list[int],
        pruned: set[int],
        *,
        cutoff: int,
        now: int,
    ) -> int:
        """Compute again the calculated attributes of the pruned batches' profiles whose
        window reaches before the cutoff; how many profiles changed."""
        calculated = self._calculated.at(version)
        loaded = uow.profiles.load(mpids)
        survivors: dict[int, Profile] = {}
        for mpid in mpids:
            profile = follow(uow.profiles, loaded.get(mpid))
            if profile is not None:
                survivors[profile.mpid] = profile
        changed = 0
        for profile in survivors.values():
            after = self._recomputed(profile, calculated.by_workspace, pruned, cutoff, now)
            if after is not profile:
                saved = replace(after, version=profile.version + 1, audience_due_ms=now)
                uow.profiles.save(saved)
                changed += 1
        return changed

    def _recomputed(
        self,
        profile: Profile,
        active: Mapping[int, ActiveSet],
        pruned: set[int],
        cutoff: int,
        now: int,
    ) -> Profile:
        reaching: dict[int, list[Compiled]] = {}
        for workspace_id, workspace in profile.workspaces.items():
            defs = active.get(workspace_id)
            if defs is None or not workspace.calculated:
                continue
            found = [
                d
                for d in defs.definitions
                if d.name in workspace.calculated and _reaches(d, now - cutoff)
            ]
            if found:
                reaching[workspace_id] = found
        if not reaching:
            return profile
        mpids = [profile.mpid, *self._subjects.merged_into([profile.mpid])]
        entries = sorted(
            (
                e
                for mpid in mpids
                for e in self._log.log_for_profile(mpid, _PROFILE_LOG_LIMIT)
                if e.id not in pruned and e.status == BatchStatus.APPLIED
            ),
            key=lambda e: e.id or 0,
        )
        workspaces = dict(profile.workspaces)
        for workspace_id, found_defs in reaching.items():
            events = [
                event
                for entry in entries
                if entry.workspace_id == workspace_id
                for event in logged_events(entry, self._tenancy.input_named)
                if event.timestamp_ms >= cutoff
            ]
            last = max((e.id or 0 for e in entries if e.workspace_id == workspace_id), default=0)
            workspace = workspaces[workspace_id]
            states = dict(workspace.calculated)
            for compiled in found_defs:
                held = states[compiled.name]
                fresh = compiled.empty_state()
                if held.digest == compiled.digest:
                    fresh = replace(fresh, seed=held.seed, cutoff_ms=held.cutoff_ms)
                folded = fold_events({compiled.name: fresh}, [compiled], events, now)
                states[compiled.name] = replace(folded[compiled.name], history_to=last)
            names = {d.name for d in found_defs}
            workspaces[workspace_id] = with_values(
                replace(workspace, calculated=states), now, names
            )
        return replace(profile, workspaces=workspaces)


def _reaches(compiled: Compiled, retention_ms: int) -> bool:
    """Whether the definition's window may hold events from before the retention period."""
    within = compiled.spec.within_days
    return within is None or within * DAY_MS > retention_ms


class Retention:
    """The sweeps, as the server runs them on a timer and `kindred retention run` does."""

    def __init__(
        self,
        profiles: LifetimeSweep,
        events: EventRetention,
        attributes: AttributeExpirySweep | None = None,
    ) -> None:
        self.profiles = profiles
        self.events = events
        self.attributes = attributes

    def run(
        self,
        on_profiles: Callable[[SweepReport], None] | None = None,
        on_events: Callable[[EventsReport], None] | None = None,
        on_attributes: Callable[[ExpiryReport], None] | None = None,
    ) -> RetentionReport:
        """The lifetime sweep, the event retention, then the attribute expiry."""
        profiles = self.profiles.run(on_profiles)
        events = self.events.run(on_events)
        attributes = (
            self.attributes.run(on_attributes) if self.attributes is not None else ExpiryReport()
        )
        return RetentionReport(profiles=profiles, events=events, attributes=attributes)
