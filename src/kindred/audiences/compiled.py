"""An audience made ready for the hot path (AUD-5): its criteria taken through the one
pipeline, parse → check → compile, once when the audience is loaded (never per event),
with what evaluating it needs worked out beside the closure (the fields it depends on, the
audiences it nests, the event histories it reads, whether time alone changes it).

Pure: the registry (`services.audiences`) reads the saved definitions and keeps these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kindred.audiences.ast import EventCriterion, Node
from kindred.audiences.compile import Predicate, compile_node
from kindred.audiences.definition import AudienceDef
from kindred.audiences.deps import dependencies, event_criteria
from kindred.audiences.parse import (
    Catalog,
    nested_audiences,
    parse_criteria,
    refuse_cycles,
    refuse_nesting_when_nested,
)
from kindred.audiences.timing import is_timed
from kindred.domain.errors import InvalidBatch
from kindred.domain.profile import Membership
from kindred.domain.tenancy import Tenancy

__all__ = ["CompiledAudience", "check_audience", "compile_audience", "nested_first", "nesting_of"]


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
