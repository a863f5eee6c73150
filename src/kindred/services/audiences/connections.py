"""Bulk connection (AUD-10): many audiences connected to one output in one request, each
connection with its initial sync.

Every item is checked before anything is kept (the audience exists, the name is free and
unique, the output and identity types are valid), so a request is kept whole or refused
whole, naming the item refused (`audiences[2].audience_id`)."""

from __future__ import annotations

import msgspec

from kindred.domain.errors import ConfigError, InvalidBatch, NotFound
from kindred.domain.forwarding import AudienceConnection
from kindred.services.audiences.admin import AudienceService
from kindred.services.forwarding.catalog import OutputCatalog

__all__ = ["BulkAudience", "BulkConnectionRequest", "BulkConnections"]

# Connections made by one request at most.
MAX_BULK = 500


class BulkAudience(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    audience_id: int
    # The connection's name; none: `OUTPUT-AUDIENCE_ID`.
    name: str | None = None


class BulkConnectionRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`POST /admin/v1/connections/audiences/bulk`: the output, what every connection
    shares, and the audiences (an id, or an id with the connection's name)."""

    output: str
    identity_types: list[str]
    shared_attributes: list[str] = msgspec.field(default_factory=list)
    enabled: bool = True
    audiences: list[int | BulkAudience]


def connection_name(output: str, audience_id: int) -> str:
    return f"{output}-{audience_id}"


class BulkConnections:
    def __init__(self, catalog: OutputCatalog, audiences: AudienceService) -> None:
        self._catalog = catalog
        self._audiences = audiences

    def connect(self, request: BulkConnectionRequest) -> list[AudienceConnection]:
        """Make one audience connection per audience; all or none (`InvalidBatch` with the
        path of the item refused, `NotFound` for the output)."""
        if not request.audiences:
            raise InvalidBatch("name at least one audience", "audiences")
        if len(request.audiences) > MAX_BULK:
            raise InvalidBatch(f"at most {MAX_BULK} audiences per request", "audiences")
        if self._catalog.current().output(request.output) is None:
            raise InvalidBatch(f"no output named {request.output!r}", "output")
        made: list[AudienceConnection] = []
        for index, item in enumerate(request.audiences):
            audience_id = item if isinstance(item, int) else item.audience_id
            name = None if isinstance(item, int) else item.name
            path = f"audiences[{index}]" + ("" if isinstance(item, int) else ".audience_id")
            try:
                self._audiences.get(audience_id)
            except NotFound as exc:
                raise InvalidBatch(str(exc), path) from None
            made.append(
                AudienceConnection(
                    name=name if name is not None else connection_name(request.output, audience_id),
                    audience_id=audience_id,
                    output=request.output,
                    identity_types=list(request.identity_types),
                    shared_attributes=list(request.shared_attributes),
                    enabled=request.enabled,
                )
            )
        try:
            return self._catalog.save_many("audience_connection", made)
        except ConfigError as exc:
            raise InvalidBatch(_item_path(str(exc), made)) from None


def _item_path(message: str, made: list[AudienceConnection]) -> str:
    """A catalog refusal with the item's place in the request: `audience_connections['x']`
    becomes `audiences[2] (connection 'x')`."""
    for index, connection in enumerate(made):
        named = f"audience_connections[{connection.name!r}]"
        if message.startswith(named):
            return f"audiences[{index}] (connection {connection.name!r}){message[len(named) :]}"
    return message.replace("audience_connections[", "audiences[", 1)
