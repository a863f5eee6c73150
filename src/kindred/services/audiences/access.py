"""Audience access (`domain.users`): what a caller may see, use and change, the one check
every audience route and page makes. An audience another caller may not see answers as if
it did not exist (404); one they see but may not change or use answers 403 saying why; an
audience nesting one its saver may not use is refused at save (400 with the path)."""

from __future__ import annotations

from collections.abc import Iterable

from kindred.audiences.definition import AudienceDef
from kindred.audiences.parse import nested_audience_paths
from kindred.domain.errors import AuthRejected, InvalidBatch, NotFound
from kindred.domain.users import Principal, may_change, may_see, may_use
from kindred.services.audiences.admin import AudienceService

__all__ = ["AudienceAccessCheck", "owner_text"]


def owner_text(audience: AudienceDef) -> str:
    return audience.created_by or "nobody"


class AudienceAccessCheck:
    def __init__(self, audiences: AudienceService) -> None:
        self._audiences = audiences

    def visible(self, caller: Principal, audiences: Iterable[AudienceDef]) -> list[AudienceDef]:
        """The audiences the caller may see, in their order."""
        return [a for a in audiences if may_see(caller, a.created_by, a.access)]

    def seen(self, caller: Principal, audience_id: int) -> AudienceDef:
        """The audience, if the caller may see it (NotFound else, as for no audience)."""
        audience = self._audiences.get(audience_id)
        if not may_see(caller, audience.created_by, audience.access):
            raise NotFound(f"no audience {audience_id}")
        return audience

    def changeable(self, caller: Principal, audience_id: int) -> AudienceDef:
        """The audience, if the caller may edit, activate, deactivate or delete it."""
        audience = self.seen(caller, audience_id)
        if not may_change(caller, audience.created_by):
            raise AuthRejected(
                f"audience {audience_id} belongs to {owner_text(audience)}: only its owner or"
                f" an admin may change it ({caller.name} is {caller.role.value})"
            )
        return audience

    def usable(self, caller: Principal, audience_id: int) -> AudienceDef:
        """The audience, if the caller may nest it, connect it or download it."""
        audience = self.seen(caller, audience_id)
        if not may_use(caller, audience.created_by, audience.access):
            raise AuthRejected(
                f"audience {audience_id} of {owner_text(audience)} is {_level(audience)}:"
                " only its owner or an admin may use it"
            )
        return audience

    def hidden_connections(
        self, caller: Principal, connections: Iterable[tuple[str, int]]
    ) -> frozenset[str]:
        """Of the audience connections given (name, audience id), those of an audience the
        caller may not see: not listed to them and answered as no connection (404). One of
        a deleted audience stays in sight, as the web UI shows it."""
        known = {a.id: a for a in self._audiences.all()}
        return frozenset(
            name
            for name, audience_id in connections
            if (audience := known.get(audience_id)) is not None
            and not may_see(caller, audience.created_by, audience.access)
        )

    def check_connecting(self, caller: Principal, named: list[tuple[str, int]]) -> None:
        """Connecting audiences (each with the path naming it in the request) is using
        them: an unknown one, or one the caller may not see, is refused as unknown (400 at
        its path), one they may not use with 403."""
        known = {a.id: a for a in self._audiences.all()}
        for path, audience_id in named:
            audience = known.get(audience_id)
            if audience is None or not may_see(caller, audience.created_by, audience.access):
                raise InvalidBatch(f"no audience {audience_id}", path)
            self.usable(caller, audience_id)

    def check_nesting(self, caller: Principal, audience: AudienceDef) -> None:
        """InvalidBatch at the criterion's path when the audience nests one the caller may
        not use (an unknown id is left to the definition's own checks)."""
        known = {a.id: a for a in self._audiences.all()}
        for path, nested_id in nested_audience_paths(audience.criteria):
            nested = known.get(nested_id)
            if nested is None or may_use(caller, nested.created_by, nested.access):
                continue
            if not may_see(caller, nested.created_by, nested.access):
                raise InvalidBatch(f"no audience {nested_id}", path)
            raise InvalidBatch(
                f"audience {nested_id} of {owner_text(nested)} is {_level(nested)}: it may not"
                " be nested by others",
                path,
            )


def _level(audience: AudienceDef) -> str:
    return "view only" if audience.access == "view" else audience.access
