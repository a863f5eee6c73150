"""Managing calculated attribute definitions (CA-1): create as draft, edit, activate,
delete; the computation over the stored event history after activation; seeds (the
seeding API)."""

from __future__ import annotations

from typing import Protocol

import msgspec

from kindred.attributes.active import compiled_of, scheduled
from kindred.attributes.definition import CalculatedDef, compile_definition
from kindred.attributes.seeds import seeded
from kindred.domain.calculated_entries import with_values
from kindred.domain.errors import InvalidBatch, NotFound
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Profile
from kindred.domain.tenancy import Tenancy
from kindred.ports import CalculatedStore, Clock, ConcurrentUpdate, EventLogReader, UnitOfWork
from kindred.services.calculated.jobs import fold_history
from kindred.services.calculated.registry import CalculatedRegistry
from kindred.services.forwarding.transactions import Transactions
from kindred.services.merges import follow

__all__ = ["CalculatedService", "Progress", "SeedEntry"]

replace = msgspec.structs.replace


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """How far the computation over the stored history of an activated definition is."""

    id: int
    name: str
    is_calculated: bool
    calculation_percent_complete: int
    batches_read: int
    batches_total: int


class SeedEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One calculated attribute of the seeding API."""

    attribute_name: str
    calculation_type: str
    cutoff_date: str
    seed: dict[str, object]


class _Store(CalculatedStore, EventLogReader, Protocol):
    """The definitions, and the event log a seed's history is folded from."""


class CalculatedService:
    def __init__(
        self,
        store: _Store,
        transactions: Transactions,
        registry: CalculatedRegistry,
        tenancy: Tenancy,
        clock: Clock,
    ) -> None:
        self._store = store
        self._transactions = transactions
        self._registry = registry
        self._tenancy = tenancy
        self._clock = clock

    # --- definitions --------------------------------------------------------------------

    def all(self) -> list[CalculatedDef]:
        return [d for d in self._store.list_calculated() if d.status != "deleted"]

    def get(self, def_id: int) -> CalculatedDef:
        for definition in self.all():
            if definition.id == def_id:
                return definition
        raise NotFound(f"no calculated attribute {def_id}")

    def create(self, definition: CalculatedDef) -> CalculatedDef:
        now = self._clock.now_ms()
        draft = CalculatedDef(
            name=definition.name,
            workspace_id=definition.workspace_id,
            description=definition.description,
            draft=definition.draft,
            created_ms=now,
            updated_ms=now,
        )
        self._check(draft)
        return self._store.save_calculated(draft)

    def edit(self, def_id: int, changes: dict[str, object]) -> CalculatedDef:
        """Replace the draft (and the description); the active definition computes on
        until the draft is activated."""
        unknown = sorted(set(changes) - {"description", "draft"})
        if unknown:
            raise InvalidBatch("only description and draft can change", unknown[0])
        current = self.get(def_id)
        description = changes.get("description", current.description)
        if not isinstance(description, str):
            raise InvalidBatch("expected a string", "description")
        draft = changes.get("draft", current.draft)
        edited = replace(
            current,
            description=description,
            draft=draft,
            updated_ms=self._clock.now_ms(),
        )
        self._check(edited)
        return self._store.save_calculated(edited)

    def activate(self, def_id: int) -> CalculatedDef:
        """The draft becomes the active definition, computed over the stored history in
        the background (`run`), and on every batch from now on."""
        current = self.get(def_id)
        if current.draft is None:
            raise InvalidBatch("nothing to activate: the draft is empty", "draft")
        if current.status == "active" and current.active == current.draft:
            # Already what computes: computing it again would count its history twice (the
            # profiles' states are those of this very definition).
            return current
        now = self._clock.now_ms()
        active = replace(
            current,
            status="active",
            active=current.draft,
            activated_ms=now,
            updated_ms=now,
            backfill_from=0,
            backfill_done=0,
            backfill_finished_ms=None,
        )
        # The log's newest batch is read with the save, as one transaction: batches up to it
        # are the computation's, every later one is folded as it is applied.
        return self._store.activate_calculated(active)

    def delete(self, def_id: int) -> None:
        current = self.get(def_id)
        self._store.save_calculated(
            replace(current, status="deleted", active=None, updated_ms=self._clock.now_ms())
        )

    def progress(self, def_id: int) -> Progress:
        current = self.get(def_id)
        total = max(current.backfill_total, 1)
        done = current.backfill_finished_ms is not None
        percent = 100 if done else min(99, current.backfill_done * 100 // total)
        return Progress(
            id=current.id,
            name=current.name,
            is_calculated=current.status == "active" and done,
            calculation_percent_complete=percent if current.status == "active" else 0,
            batches_read=current.backfill_done,
            batches_total=current.backfill_total,
        )

    def _check(self, definition: CalculatedDef) -> None:
        if not definition.name or len(definition.name) > 255:
            raise InvalidBatch("a name of 1 to 255 characters", "name")
        if definition.workspace_id not in self._tenancy.workspaces:
            raise InvalidBatch(f"no workspace {definition.workspace_id}", "workspace_id")
        if definition.draft is not None:
            compile_definition(definition.id, definition.name, 0, definition.draft)
        for other in self.all():
            same = other.name == definition.name and other.workspace_id == definition.workspace_id
            if same and other.id != definition.id:
                raise InvalidBatch(f"{definition.name!r} exists in this workspace", "name")

    # --- seeds --------------------------------------------------------------------------

    def seed(
        self,
        workspace_id: int,
        mpid: int | None,
        identities: dict[str, str],
        entries: list[SeedEntry],
    ) -> int:
        """Start the profile's calculated attributes from the seeds (all or none);
        returns the profile's MPID."""
        active = {d.name: d for d in self.all() if d.workspace_id == workspace_id}
        for entry in entries:
            definition = active.get(entry.attribute_name)
            if definition is None or definition.status != "active":
                raise InvalidBatch(f"{entry.attribute_name}: no active calculated attribute")
        for _ in range(5):
            try:
                with self._transactions.begin() as uow:
                    profile = self._profile(uow, workspace_id, mpid, identities)
                    profile = self._seeded(profile, workspace_id, entries, active)
                    uow.profiles.save(profile)
                    return profile.mpid
            except ConcurrentUpdate:
                continue
        raise ConcurrentUpdate("the profile kept changing; try again")

    def _seeded(
        self,
        profile: Profile,
        workspace_id: int,
        entries: list[SeedEntry],
        active: dict[str, CalculatedDef],
    ) -> Profile:
        workspace = profile.workspaces.get(workspace_id)
        if workspace is None:
            raise NotFound(f"profile {profile.mpid} has no data in workspace {workspace_id}")
        now = self._clock.now_ms()
        states = dict(workspace.calculated)
        for entry in entries:
            compiled = compiled_of(active[entry.attribute_name])
            if compiled.spec.kind != _kind(entry.calculation_type):
                raise InvalidBatch(
                    f"{entry.attribute_name}: calculation_type is {compiled.spec.kind}"
                )
            start = seeded(compiled.empty_state(), entry.seed, entry.cutoff_date, compiled.name)
            states[compiled.name] = fold_history(
                self._store, self._tenancy.input_named, compiled, profile.mpid, now, state=start
            )
        workspace = with_values(replace(workspace, calculated=states), now)
        changed = replace(
            profile,
            workspaces={**profile.workspaces, workspace_id: workspace},
            version=profile.version + 1,
        )
        return scheduled(changed, now)

    def _profile(
        self, uow: UnitOfWork, workspace_id: int, mpid: int | None, identities: dict[str, str]
    ) -> Profile:
        scope = self._tenancy.workspaces[workspace_id].identity_scope
        if mpid is None:
            keys = sorted(IdentityKey(t, v) for t, v in identities.items())
            linked = uow.identities.find(scope, keys)
            found = sorted({m for mpids in linked.values() for m in mpids})
            if len(found) != 1:
                raise NotFound("the identities name no single profile")
            mpid = found[0]
        profile = follow(uow.profiles, uow.profiles.load([mpid]).get(mpid))
        if profile is None or profile.scope != scope:
            raise NotFound(f"no profile {mpid}")
        return profile


def _kind(calculation_type: str) -> str:
    return {"minimum": "min", "maximum": "max"}.get(calculation_type, calculation_type)
