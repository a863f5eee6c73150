"""An audience's definition history (BEY-3): every saved version, the one in force at an
instant, and what changed between two.

A version is the audience as saved whenever what its owner decides changed: the name,
external name, workspaces, inputs, criteria, lookback, tags, status or who else may see and
use it (`access`). The backfill's progress and timestamps Kindred keeps are not the
definition and make no version.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from kindred.audiences.definition import AudienceDef

__all__ = [
    "AudienceVersion",
    "DefinitionChange",
    "definition_of",
    "diff",
    "in_force",
    "is_new_version",
    "version_view",
]

# The fields the audience's owner sets, in the order a diff lists them.
_DEFINITION_FIELDS = (
    "name",
    "external_name",
    "status",
    "access",
    "workspaces",
    "inputs",
    "lookback_days",
    "tags",
    "criteria",
    "kind",
    "expiry_days",
)


class AudienceVersion(msgspec.Struct, frozen=True, kw_only=True):
    """Version `version` (1, 2, ...) of an audience: the audience as it was saved."""

    audience_id: int
    version: int
    audience: AudienceDef

    @property
    def saved_ms(self) -> int:
        return self.audience.updated_ms or self.audience.created_ms

    @property
    def saved_by(self) -> str:
        return self.audience.updated_by or self.audience.created_by


class DefinitionChange(msgspec.Struct, frozen=True, kw_only=True):
    """One difference: the path of the value (`criteria.and[1].value`), before and after
    (absent on one side: None, with `added` or `removed` saying so)."""

    path: str
    before: object = None
    after: object = None
    change: str  # "changed" | "added" | "removed"


def definition_of(audience: AudienceDef) -> dict[str, object]:
    """What the audience's owner decides, as plain JSON values."""
    as_json = msgspec.to_builtins(audience)
    return {name: as_json.get(name) for name in _DEFINITION_FIELDS}


def is_new_version(previous: AudienceDef | None, audience: AudienceDef) -> bool:
    """Whether saving `audience` after `previous` (its last version) makes a version."""
    return previous is None or definition_of(previous) != definition_of(audience)


def in_force(versions: Sequence[AudienceVersion], at_ms: int) -> AudienceVersion | None:
    """The version saved last at or before `at_ms` (versions oldest first)."""
    found = None
    for version in versions:
        if version.saved_ms > at_ms:
            break
        found = version
    return found


def diff(before: AudienceDef, after: AudienceDef) -> list[DefinitionChange]:
    """What changed from one version's definition to another's, field by field, down to
    the values inside criteria."""
    changes: list[DefinitionChange] = []
    old, new = definition_of(before), definition_of(after)
    for name in _DEFINITION_FIELDS:
        _compare(name, old[name], new[name], changes)
    return changes


def _compare(path: str, old: object, new: object, into: list[DefinitionChange]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            where = f"{path}.{key}"
            if key not in new:
                into.append(DefinitionChange(path=where, before=old[key], change="removed"))
            elif key not in old:
                into.append(DefinitionChange(path=where, after=new[key], change="added"))
            else:
                _compare(where, old[key], new[key], into)
        return
    if isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            where = f"{path}[{index}]"
            if index >= len(new):
                into.append(DefinitionChange(path=where, before=old[index], change="removed"))
            elif index >= len(old):
                into.append(DefinitionChange(path=where, after=new[index], change="added"))
            else:
                _compare(where, old[index], new[index], into)
        return
    into.append(DefinitionChange(path=path, before=old, after=new, change="changed"))


def version_view(version: AudienceVersion) -> dict[str, object]:
    """A version as the admin API and CLI show it."""
    return {
        "audience_id": version.audience_id,
        "version": version.version,
        "saved_ms": version.saved_ms,
        "saved_by": version.saved_by,
        "definition": definition_of(version.audience),
    }
