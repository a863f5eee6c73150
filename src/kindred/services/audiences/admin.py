"""Managing audience definitions (AUD-1, AUD-10), page metrics (AUD-6) and the membership
history (AUD-12)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from kindred.audiences.definition import (
    AudienceDef,
    MembershipChange,
    check_settings,
    with_backfill,
)
from kindred.audiences.evaluate import DAY_MS
from kindred.audiences.versions import AudienceVersion, DefinitionChange, diff, in_force
from kindred.domain.errors import InvalidBatch, NotFound
from kindred.ports import AudienceStore, Clock
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.forwarding.transactions import Transactions

__all__ = ["AudienceMetrics", "AudienceService"]


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
    # A standard audience (AUD-13): its kind, when its members were last computed, when
    # that expires and whether it has (its members still count), a calculation pending.
    kind: str = "real_time"
    computed_ms: int | None = None
    expires_ms: int | None = None
    expired: bool = False
    calculating: bool = False


class AudienceService:
    """Managing definitions (AUD-1, AUD-10) and reading the membership log (AUD-12)."""

    def __init__(
        self,
        store: AudienceStore,
        transactions: Transactions,
        registry: AudienceRegistry,
        clock: Clock,
    ) -> None:
        self._store = store
        self._transactions = transactions
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
            audience,
            id=0,
            status="draft",
            created_ms=now,
            updated_ms=now,
            created_by=created_by,
            computed_ms=None,
            expires_ms=None,
            calc_requested_ms=None,
            calc_owner=None,
            calc_lease_ms=0,
            shadow=None,
        )
        self._check(draft)
        return self._save(draft)

    def update(self, audience_id: int, audience: AudienceDef, changed_by: str = "") -> AudienceDef:
        current = self.get(audience_id)
        changed = msgspec.structs.replace(
            audience,
            id=audience_id,
            status=current.status,
            created_ms=current.created_ms,
            created_by=current.created_by,
            updated_ms=self._clock.now_ms(),
            updated_by=changed_by,
            shadow=None,  # a direct edit discards a shadow edit (BEY-4)
        )
        if changed.kind != current.kind:
            raise InvalidBatch(f"a {current.kind} audience stays one", "kind")
        changed = msgspec.structs.replace(
            changed,
            computed_ms=current.computed_ms,
            expires_ms=current.expires_ms,
            calc_requested_ms=current.calc_requested_ms,
            calc_owner=current.calc_owner,
            calc_lease_ms=current.calc_lease_ms,
            history_to=current.history_to,
        )
        self._check(changed)
        if changed.status == "active" and changed.kind == "real_time":
            return self._save(with_backfill(changed), cut_log=True)
        return self._save(changed)

    def set_status(self, audience_id: int, status: str, changed_by: str = "") -> AudienceDef:
        if status not in ("active", "inactive"):
            raise InvalidBatch("status is active or inactive", "status")
        current = self.get(audience_id)
        changed = msgspec.structs.replace(
            current, status=status, updated_ms=self._clock.now_ms(), updated_by=changed_by
        )
        if status == "active" and changed.kind == "real_time":
            return self._save(with_backfill(changed), cut_log=True)
        if status == "inactive":
            changed = msgspec.structs.replace(changed, calc_requested_ms=None)
        saved = self._save(changed)
        if status == "active":
            return saved  # a standard audience: its calculation gives it members
        self._remove_members(audience_id, "audience deactivated")
        return saved

    def calculate(self, audience_id: int, changed_by: str = "") -> AudienceDef:
        """Ask for a standard audience's calculation (AUD-13) over the event log as it is
        now (the background job runs it: services.audiences.standard); a draft is
        activated by it. Asked again while one runs, that one starts over."""
        current = self.get(audience_id)
        if current.kind != "standard":
            raise InvalidBatch("only a standard audience is calculated on request", "kind")
        if current.status == "inactive":
            raise InvalidBatch("activate the audience first", "status")
        now = self._clock.now_ms()
        asked = msgspec.structs.replace(current, calc_requested_ms=now)
        if current.status == "draft":
            asked = msgspec.structs.replace(
                asked, status="active", updated_ms=now, updated_by=changed_by
            )
        return self._save(asked, cut_log=True)

    def clone(self, audience_id: int, created_by: str | None = None) -> AudienceDef:
        """A draft copy, made by `created_by` (None: the original's creator)."""
        current = self.get(audience_id)
        copy = msgspec.structs.replace(
            current,
            name=f"{current.name} (copy)",
            computed_ms=None,
            expires_ms=None,
            calc_requested_ms=None,
            calc_owner=None,
            calc_lease_ms=0,
        )
        by = current.created_by if created_by is None else created_by
        return self.create(copy, created_by=by)

    def delete(self, audience_id: int, changed_by: str = "") -> AudienceDef:
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
            current, status="deleted", updated_ms=self._clock.now_ms(), updated_by=changed_by
        )
        saved = self._save(changed)
        self._remove_members(audience_id, "audience deleted")
        return saved

    # --- definition history (BEY-3) -------------------------------------------------------

    def versions(self, audience_id: int) -> list[AudienceVersion]:
        """Every saved version of the audience's definition, oldest first."""
        self.get(audience_id)
        return self._store.audience_versions(audience_id)

    def version(self, audience_id: int, number: int) -> AudienceVersion:
        found = next((v for v in self.versions(audience_id) if v.version == number), None)
        if found is None:
            raise NotFound(f"audience {audience_id} has no version {number}")
        return found

    def in_force_at(self, audience_id: int, at_ms: int) -> AudienceVersion:
        """The version in force at an instant: the last saved at or before it."""
        found = in_force(self.versions(audience_id), at_ms)
        if found is None:
            raise NotFound(f"audience {audience_id} did not exist at {at_ms}")
        return found

    def diff(self, audience_id: int, before: int, after: int) -> list[DefinitionChange]:
        """What changed from version `before` to version `after`."""
        return diff(
            self.version(audience_id, before).audience, self.version(audience_id, after).audience
        )

    def _remove_members(self, audience_id: int, reason: str) -> None:
        """Every member leaves at once (AUD-10), each exit in the log."""
        with self._transactions.begin() as uow:
            uow.memberships.remove_all(audience_id, self._clock.now_ms(), reason)

    def metrics(self, audience_id: int) -> AudienceMetrics:
        """Page metrics (AUD-6): size, adds and drops in the last 24 hours, volatility."""
        return self._metrics(self.get(audience_id), self._clock.now_ms())

    def metrics_of(self, audiences: Sequence[AudienceDef]) -> list[AudienceMetrics]:
        """The metrics of audiences already read (a list page's rows), in their order: each
        is counted from its membership log, none read again."""
        now = self._clock.now_ms()
        return [self._metrics(a, now) for a in audiences]

    def _metrics(self, audience: AudienceDef, now: int) -> AudienceMetrics:
        audience_id = audience.id
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
            kind=audience.kind,
            computed_ms=audience.computed_ms,
            expires_ms=audience.expires_ms,
            expired=audience.expires_ms is not None and audience.expires_ms <= now,
            calculating=audience.calc_requested_ms is not None,
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

    def membership_changes(
        self, audience_id: int, until_ms: int, limit: int
    ) -> list[MembershipChange]:
        """The audience's enters and exits up to an instant, oldest first (its history as
        the UI's audience page shows it)."""
        return self._store.membership_log(
            audience_id=audience_id, mpid=None, until_ms=until_ms, limit=limit
        )

    def audiences_of_at(self, mpid: int, at_ms: int) -> list[int]:
        log = self._store.membership_log(
            audience_id=None, mpid=mpid, until_ms=at_ms, limit=1_000_000
        )
        state: dict[int, bool] = {}
        for change in log:
            state[change.audience_id] = change.entered
        return sorted(a for a, inside in state.items() if inside)

    def check(self, audience: AudienceDef) -> None:
        """The checks a definition passes before it is saved (a shadow edit's too)."""
        self._check(audience)

    def _check(self, audience: AudienceDef) -> None:
        if not audience.name.strip():
            raise InvalidBatch("an audience needs a name", "name")
        check_settings(audience)
        self._registry.check(audience)

    def _save(self, audience: AudienceDef, *, cut_log: bool = False) -> AudienceDef:
        """`cut_log`: an activation or an edit of an active audience, whose histories are
        computed from the batches logged up to this save (with_backfill)."""
        return self._store.save_audience(audience, cut_log=cut_log)
