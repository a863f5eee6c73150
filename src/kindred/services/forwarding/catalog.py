"""Outputs and connections (TEN-3, ENR-3): the config file's, fixed, and those made through
the admin API, kept in the store; checked together (every name unique, every reference
resolved) and used at the caller's definitions version (`services.definitions`).
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from kindred.domain.errors import ConfigError, NotFound, refuse_duplicates
from kindred.domain.forwarding import (
    AudienceConnection,
    EventConnection,
    OutputDef,
    check_audience_connection,
    check_event_connection,
    check_output,
)
from kindred.domain.tenancy import Tenancy
from kindred.ports import (
    DefinitionsVersion,
    OutputDefinitions,
)
from kindred.services.definitions import Versioned

__all__ = ["OutputCatalog", "OutputsAndConnections"]

_KINDS: dict[str, type[Any]] = {
    "output": OutputDef,
    "event_connection": EventConnection,
    "audience_connection": AudienceConnection,
}


class OutputsAndConnections(msgspec.Struct, frozen=True, kw_only=True):
    outputs: list[OutputDef] = msgspec.field(default_factory=list)
    event_connections: list[EventConnection] = msgspec.field(default_factory=list)
    audience_connections: list[AudienceConnection] = msgspec.field(default_factory=list)

    def output(self, name: str) -> OutputDef | None:
        return next((o for o in self.outputs if o.name == name), None)

    def connection(self, name: str) -> EventConnection | AudienceConnection | None:
        return next((c for c in self.connections() if c.name == name), None)

    def connections(self) -> list[EventConnection | AudienceConnection]:
        return [*self.event_connections, *self.audience_connections]


class _CatalogStore(OutputDefinitions, DefinitionsVersion, Protocol):
    """The outputs and connections kept in the store, and the definitions' version."""


class OutputCatalog:
    """Outputs and connections: the config file's (fixed) and the admin API's (in the
    store, at the definitions version of the caller: see `services.definitions`)."""

    def __init__(
        self, store: _CatalogStore, tenancy: Tenancy, declared: OutputsAndConnections
    ) -> None:
        self._store = store
        self._tenancy = tenancy
        self._declared = self.check(declared)
        self._versions = Versioned(store, lambda: self._merged(self._stored()))

    def at(self, version: int) -> OutputsAndConnections:
        """As of the definitions version a transaction read."""
        return self._versions.at(version)

    def current(self) -> OutputsAndConnections:
        """As last committed (outside any transaction)."""
        return self._versions.current()

    def is_declared(self, name: str) -> bool:
        d = self._declared
        return d.output(name) is not None or d.connection(name) is not None

    def save(self, kind: str, doc: bytes) -> object:
        """Validate and keep an output or connection made at run time."""
        if kind not in _KINDS:
            raise NotFound(f"no kind {kind!r}")
        try:
            item: Any = msgspec.json.decode(doc, type=_KINDS[kind])
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ConfigError(f"{kind}: {exc}") from None
        if self.is_declared(item.name):
            raise ConfigError(f"{kind} {item.name!r} is declared in the config file")
        stored = self._stored()
        _replace(stored, kind, item)
        checked = self.check(self._merged(stored))
        saved = next(x for x in _items(checked, kind) if x.name == item.name)
        self._store.save_definition(kind, item.name, msgspec.json.encode(saved))
        return saved

    def delete(self, kind: str, name: str) -> None:
        if self.is_declared(name):
            raise ConfigError(f"{kind} {name!r} is declared in the config file")
        if kind == "output" and any(c.output == name for c in self.current().connections()):
            raise ConfigError(f"output {name!r} is used by a connection")
        if not self._store.delete_definition(kind, name):
            raise NotFound(f"no {kind} {name!r}")

    def check(self, defs: OutputsAndConnections) -> OutputsAndConnections:
        """Every name unique, every reference resolved; identity types made canonical."""
        outputs = [check_output(o) for o in defs.outputs]
        refuse_duplicates([o.name for o in outputs], "outputs[].name")
        names = {o.name for o in outputs}
        inputs = set(self._tenancy.inputs_by_name)
        events = [check_event_connection(c, inputs, names) for c in defs.event_connections]
        audiences = [check_audience_connection(c, names) for c in defs.audience_connections]
        refuse_duplicates(
            [c.name for c in events] + [c.name for c in audiences], "connections[].name"
        )
        return OutputsAndConnections(
            outputs=outputs, event_connections=events, audience_connections=audiences
        )

    def _stored(self) -> dict[str, list[Any]]:
        return {
            kind: [msgspec.json.decode(doc, type=t) for doc in self._store.list_definitions(kind)]
            for kind, t in _KINDS.items()
        }

    def _merged(self, stored: dict[str, list[Any]]) -> OutputsAndConnections:
        d = self._declared
        return OutputsAndConnections(
            outputs=[*d.outputs, *stored["output"]],
            event_connections=[*d.event_connections, *stored["event_connection"]],
            audience_connections=[*d.audience_connections, *stored["audience_connection"]],
        )


def _items(defs: OutputsAndConnections, kind: str) -> list[Any]:
    by_kind: dict[str, list[Any]] = {
        "output": defs.outputs,
        "event_connection": defs.event_connections,
        "audience_connection": defs.audience_connections,
    }
    return by_kind[kind]


def _replace(stored: dict[str, list[Any]], kind: str, item: Any) -> None:
    stored[kind] = [x for x in stored[kind] if x.name != item.name] + [item]
