"""An audience made ready for the hot path (AUD-5): its criteria taken through the one
pipeline, parse → check → compile, once when the audience is loaded (never per event),
with what evaluating it needs worked out beside the closure (the fields it depends on, the
audiences it nests, the event histories it reads, whether time alone changes it).

Pure: the registry (`services.audiences`) reads the saved definitions and keeps these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec

from kindred.audiences.ast import All, AnyOf, CartAbandonment, EventCriterion, Exclude, Node
from kindred.audiences.compile import Predicate, compile_node
from kindred.audiences.definition import AudienceDef
from kindred.audiences.deps import dependencies
from kindred.audiences.history import HistorySpec, history_specs
from kindred.audiences.operands import MAX_DAYS
from kindred.audiences.parse import (
    Catalog,
    nested_audiences,
    parse_criteria,
    refuse_cycles,
    refuse_nesting_when_nested,
)
from kindred.audiences.timing import ChangeTime, compile_next_change, is_timed
from kindred.domain.errors import InvalidBatch
from kindred.domain.profile import Membership, Profile
from kindred.domain.tenancy import Tenancy

__all__ = [
    "CompiledAudience",
    "bind_events",
    "check_audience",
    "compile_audience",
    "folded_marks",
    "input_scope",
    "lookback_days",
    "nested_first",
    "nesting_of",
]


@dataclass(frozen=True, slots=True)
class CompiledAudience:
    definition: AudienceDef
    node: Node
    scopes: frozenset[str]
    workspaces: frozenset[int]
    deps: frozenset[str]
    nested: frozenset[int]
    histories: tuple[HistorySpec, ...]
    # Time alone can change its answer (recency windows): the scheduler comes back.
    timed: bool
    predicate: Predicate
    # Its histories are being computed from the event log (its activation's first
    # step): until they are complete only a profile a batch creates (whose events all
    # arrive live) is evaluated against it.
    warming: bool = False
    # A standard audience (AUD-13): never evaluated as profiles change (its members are
    # replaced by a calculation, services.audiences.standard); real-time audiences nest it
    # by its stored membership. Its histories are the calculation's, never kept on ingest.
    standard: bool = False
    id: int = 0
    # When time alone may next change its answer for a subject (timing.next_change,
    # compiled once); None when it is not timed.
    changes_at: ChangeTime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", self.definition.id)
        if self.timed:
            object.__setattr__(self, "changes_at", compile_next_change(self.node))

    def cold_for(self, profile: Profile) -> bool:
        """Whether the audience is still warming for this profile: its activation has not
        yet folded the profile's logged batches into its histories (`event_folded` marks
        them folded up to `history_to`), so no answer for it would be right yet."""
        if not self.warming:
            return False
        to = self.definition.history_to
        return any(profile.event_folded.get(spec.key, -1) < to for spec in self.histories)

    def membership(self, since_ms: int) -> Membership:
        """The membership a profile entering it at `since_ms` holds."""
        return Membership(audience_id=self.id, name=_name(self.definition), since_ms=since_ms)


def compile_audience(
    audience: AudienceDef, nesting: Mapping[int, frozenset[int]], tenancy: Tenancy
) -> CompiledAudience:
    """The audience's criteria parsed, checked (against the saved audiences it may nest:
    `nesting`, see nesting_of) and compiled; InvalidBatch naming the first problem."""
    catalog = Catalog(audiences=nesting)
    node = parse_criteria(audience.criteria, catalog)
    if audience.id:
        refuse_cycles(node, audience.id, catalog)
    return _compiled(audience, node, tenancy)


def check_audience(
    audience: AudienceDef, nesting: Mapping[int, frozenset[int]], tenancy: Tenancy
) -> CompiledAudience:
    """`compile_audience` with the checks made when an audience is saved (AUD-1): its
    workspaces known and of one account, its inputs known and of those workspaces, the
    workspace a criterion names one of them, nested audiences one level deep."""
    _check_sources(audience, tenancy)
    catalog = Catalog(audiences=nesting, workspaces=frozenset(audience.workspaces), saving=True)
    node = parse_criteria(audience.criteria, catalog)
    if audience.id:
        refuse_cycles(node, audience.id, catalog)
        refuse_nesting_when_nested(node, audience.id, catalog)
    return _compiled(audience, node, tenancy)


def _check_sources(audience: AudienceDef, tenancy: Tenancy) -> None:
    account = None
    for n, workspace_id in enumerate(audience.workspaces):
        path = f"workspaces[{n}]"
        workspace = tenancy.workspaces.get(workspace_id)
        if workspace is None:
            raise InvalidBatch(f"no workspace {workspace_id}", path)
        if workspace_id in audience.workspaces[:n]:
            raise InvalidBatch(f"workspace {workspace_id} is named twice", path)
        if account is None:
            account = workspace.account.account_id
        elif workspace.account.account_id != account:
            raise InvalidBatch(
                f"workspace {workspace_id} belongs to account {workspace.account.account_id};"
                f" the audience's workspaces are of account {account}",
                path,
            )
    for n, name in enumerate(audience.inputs):
        path = f"inputs[{n}]"
        found = tenancy.input_named(name)
        if found is None:
            raise InvalidBatch(f"no input {name!r}", path)
        if found.workspace.workspace_id not in audience.workspaces:
            raise InvalidBatch(
                f"input {name!r} belongs to workspace {found.workspace.workspace_id},"
                " not one of the audience's",
                path,
            )


def _compiled(audience: AudienceDef, node: Node, tenancy: Tenancy) -> CompiledAudience:
    workspaces = frozenset(audience.workspaces)
    scopes = frozenset(
        tenancy.workspaces[w].identity_scope for w in workspaces if w in tenancy.workspaces
    )
    standard = audience.kind == "standard"
    lookback = lookback_days(audience, tenancy)
    tag_ms = audience.updated_ms if audience.history_tag_ms is None else audience.history_tag_ms
    node = bind_events(node, f"#{audience.id}.{tag_ms}", lookback)
    histories = history_specs(node, input_scope(audience, tenancy), lookback)
    if standard:
        return CompiledAudience(
            audience,
            node,
            scopes,
            workspaces,
            frozenset(),
            nested_audiences(node),
            histories,
            False,
            compile_node(node),
            standard=True,
        )
    return CompiledAudience(
        audience,
        node,
        scopes,
        workspaces,
        dependencies(node),
        nested_audiences(node),
        histories,
        is_timed(node),
        compile_node(node),
        warming=bool(histories)
        and audience.history_from is not None
        and audience.history_from < audience.history_to,
    )


def folded_marks(profile: Profile, audiences: Sequence[CompiledAudience]) -> Profile:
    """The profile marked as folded by every warming audience's activation: a profile a
    batch creates has no logged batch for them to fold (its events all arrive live), so
    those audiences evaluate it from then on."""
    marks = {
        spec.key: audience.definition.history_to
        for audience in audiences
        if audience.warming
        for spec in audience.histories
    }
    if not marks or marks.items() <= profile.event_folded.items():
        return profile
    return msgspec.structs.replace(profile, event_folded={**profile.event_folded, **marks})


def lookback_days(audience: AudienceDef, tenancy: Tenancy) -> int:
    """The audience's lookback (a standard audience's: the whole log), capped by its
    account's data retention period (RET-1): an event older than that never counts, as the
    event retention deletes it."""
    own = MAX_DAYS if audience.kind == "standard" else audience.lookback_days
    retention = [
        tenancy.workspaces[w].account.retention_days
        for w in audience.workspaces
        if w in tenancy.workspaces
    ]
    return min([own, *retention])


def input_scope(audience: AudienceDef, tenancy: Tenancy) -> frozenset[str]:
    """The inputs whose events the audience's event criteria read (AUD-16): those it
    names, or every input of its workspaces."""
    if audience.inputs:
        return frozenset(audience.inputs)
    workspaces = set(audience.workspaces)
    return frozenset(
        name
        for name, source in tenancy.inputs_by_name.items()
        if source.workspace.workspace_id in workspaces
    )


def bind_events(node: Node, tag: str, lookback_days: int) -> Node:
    """The tree with its event criteria bound to one audience: its histories keyed with
    the audience's `tag` (its id and the time of its activation or last edit, so that an
    activation computes histories of its own from the event log, never adding to events
    counted before), and its lookback applied."""
    if isinstance(node, All | AnyOf):
        return msgspec.structs.replace(
            node, items=tuple(bind_events(i, tag, lookback_days) for i in node.items)
        )
    if isinstance(node, Exclude):
        return msgspec.structs.replace(node, item=bind_events(node.item, tag, lookback_days))
    if isinstance(node, EventCriterion | CartAbandonment):
        return msgspec.structs.replace(node, tag=tag, lookback_days=lookback_days)
    return node


def nesting_of(saved: Sequence[AudienceDef]) -> dict[int, frozenset[int]]:
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


def nested_first(audiences: Sequence[CompiledAudience]) -> list[CompiledAudience]:
    """The audiences, each after the audiences it nests (so an outer one sees their new
    memberships)."""
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


def _name(audience: AudienceDef) -> str:
    return audience.external_name or audience.name


class _Anything(dict[int, frozenset[int]]):
    """A catalog that knows every audience id (reading saved definitions back)."""

    def __contains__(self, key: object) -> bool:
        return True
