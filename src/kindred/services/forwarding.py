"""Forwarding, the write side (TEN-3, ENR-3, BEY-5): which outputs and connections exist, and
the outbox rows a transaction adds for them.

Outputs and connections come from the config file and from the admin API (kept in the
store). Every write transaction of the services is opened through `Transactions`, which
adds, just before it commits, one outbox row per matching connection for each batch it
logged as applied (or read-only) and each membership change it made, so every delivery
commits with the change that caused it, whichever service made the change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import msgspec

from kindred.audiences.definition import AudienceDef, MembershipChange
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
    BatchStatus,
    DefinitionsVersion,
    Delivery,
    LogEntry,
    OutputDefinitions,
    UnitOfWork,
    UnitsOfWork,
)
from kindred.services.definitions import Versioned

__all__ = ["Catalog", "Definitions", "MembershipNote", "Router", "Transactions"]

_KINDS: dict[str, type[Any]] = {
    "output": OutputDef,
    "event_connection": EventConnection,
    "audience_connection": AudienceConnection,
}


class Definitions(msgspec.Struct, frozen=True, kw_only=True):
    outputs: list[OutputDef] = msgspec.field(default_factory=list)
    event_connections: list[EventConnection] = msgspec.field(default_factory=list)
    audience_connections: list[AudienceConnection] = msgspec.field(default_factory=list)

    def output(self, name: str) -> OutputDef | None:
        return next((o for o in self.outputs if o.name == name), None)

    def connection(self, name: str) -> EventConnection | AudienceConnection | None:
        return next((c for c in self.connections() if c.name == name), None)

    def connections(self) -> list[EventConnection | AudienceConnection]:
        return [*self.event_connections, *self.audience_connections]


class MembershipNote(msgspec.Struct, frozen=True, kw_only=True):
    """The body of a "membership" outbox row."""

    audience_id: int
    audience_name: str
    entered: bool
    at_ms: int


class _CatalogStore(OutputDefinitions, DefinitionsVersion, Protocol):
    """The outputs and connections kept in the store, and the definitions' version."""


class Catalog:
    """Outputs and connections: the config file's (fixed) and the admin API's (in the
    store, at the definitions version of the caller: see `services.definitions`)."""

    def __init__(self, store: _CatalogStore, tenancy: Tenancy, declared: Definitions) -> None:
        self._store = store
        self._tenancy = tenancy
        self._declared = self.check(declared)
        self._versions = Versioned(store, lambda: self._merged(self._stored()))

    def at(self, version: int) -> Definitions:
        """As of the definitions version a transaction read."""
        return self._versions.at(version)

    def current(self) -> Definitions:
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

    def check(self, defs: Definitions) -> Definitions:
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
        return Definitions(
            outputs=outputs, event_connections=events, audience_connections=audiences
        )

    def _stored(self) -> dict[str, list[Any]]:
        return {
            kind: [msgspec.json.decode(doc, type=t) for doc in self._store.list_definitions(kind)]
            for kind, t in _KINDS.items()
        }

    def _merged(self, stored: dict[str, list[Any]]) -> Definitions:
        d = self._declared
        return Definitions(
            outputs=[*d.outputs, *stored["output"]],
            event_connections=[*d.event_connections, *stored["event_connection"]],
            audience_connections=[*d.audience_connections, *stored["audience_connection"]],
        )


def _items(defs: Definitions, kind: str) -> list[Any]:
    by_kind: dict[str, list[Any]] = {
        "output": defs.outputs,
        "event_connection": defs.event_connections,
        "audience_connection": defs.audience_connections,
    }
    return by_kind[kind]


def _replace(stored: dict[str, list[Any]], kind: str, item: Any) -> None:
    stored[kind] = [x for x in stored[kind] if x.name != item.name] + [item]


class _EventsOnly(msgspec.Struct):
    events: list[msgspec.Raw] | None = None


_EVENTS_ONLY = msgspec.json.Decoder(_EventsOnly)
_NOTE = msgspec.json.Encoder()


class Router:
    """Which outbox rows a logged batch or a membership change makes."""

    def __init__(
        self,
        catalog: Catalog,
        tenancy: Tenancy,
        audiences: Callable[[int], Mapping[int, AudienceDef]],
    ) -> None:
        """`audiences`: every audience by id, at a definitions version."""
        self._catalog = catalog
        self._tenancy = tenancy
        self._audiences = audiences

    def for_batch(self, entry: LogEntry, version: int) -> list[Delivery]:
        """The rows of a logged batch, under the connections at `version`."""
        applied = entry.status == BatchStatus.APPLIED and entry.mpid is not None
        if not applied and entry.status != BatchStatus.READ_ONLY:
            return []
        wanted = [
            c
            for c in self._catalog.at(version).event_connections
            if c.enabled and c.input == entry.input
        ]
        if not wanted or not _has_events(entry.body):
            return []  # batches without events go to no event output (ENR-1)
        return [
            Delivery(
                connection=c.name,
                kind="batch",
                workspace_id=entry.workspace_id,
                created_ms=entry.received_ms,
                body=entry.body,
                mpid=entry.mpid if applied else None,
                source=entry.input,
                client_ip=entry.client_ip,
                historical=entry.historical,
            )
            for c in wanted
        ]

    def for_memberships(self, changes: Sequence[MembershipChange], version: int) -> list[Delivery]:
        """The rows of membership changes, under the connections at `version`."""
        defs = self._catalog.at(version)
        if not changes or (
            not defs.audience_connections
            and not any(c.audience_events for c in defs.event_connections)
        ):
            return []
        audiences = self._audiences(version)
        rows: list[Delivery] = []
        for change in changes:
            audience = audiences.get(change.audience_id)
            if audience is None:
                continue
            note = MembershipNote(
                audience_id=audience.id,
                audience_name=audience.external_name or audience.name,
                entered=change.entered,
                at_ms=change.at_ms,
            )
            body = _NOTE.encode(note)
            for name, workspace_id in self._membership_connections(defs, audience):
                rows.append(
                    Delivery(
                        connection=name,
                        kind="membership",
                        workspace_id=workspace_id,
                        created_ms=change.at_ms,
                        body=body,
                        mpid=change.mpid,
                    )
                )
        return rows

    def _membership_connections(
        self, defs: Definitions, audience: AudienceDef
    ) -> Iterator[tuple[str, int]]:
        for a in defs.audience_connections:
            if a.enabled and a.audience_id == audience.id:
                yield a.name, audience.workspaces[0] if audience.workspaces else 0
        for e in defs.event_connections:
            source = self._tenancy.input_named(e.input)
            if not (e.enabled and e.audience_events and source is not None):
                continue
            if source.workspace.workspace_id in audience.workspaces:
                yield e.name, source.workspace.workspace_id


def _has_events(body: bytes) -> bool:
    try:
        return bool(_EVENTS_ONLY.decode(body).events)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return False


class Transactions:
    """Where the services open their write transactions: before each one commits, the
    outbox rows of what it changed (`UnitOfWork.recorded`: the batches it logged, the
    membership changes it appended, whichever call made them) are written in it, so that
    every delivery commits with the change that caused it (ENR-3). Without a router
    (no forwarding wired, as in some tests) nothing is forwarded."""

    def __init__(self, store: UnitsOfWork, router: Router | None = None) -> None:
        self._store = store
        self._router = router

    @contextmanager
    def begin(self) -> Iterator[UnitOfWork]:
        with self._store.unit_of_work() as uow:
            yield uow
            self.write_outbox(uow)

    def write_outbox(self, uow: UnitOfWork) -> None:
        """The forwarding step: one outbox row per matching connection for each batch
        logged as applied (or read-only) and each membership change, in order."""
        if self._router is None:
            return
        recorded = uow.recorded()
        if not recorded.log and not recorded.memberships:
            return
        version = uow.definitions_version()
        rows = [row for entry in recorded.log for row in self._router.for_batch(entry, version)]
        rows += self._router.for_memberships(recorded.memberships, version)
        if rows:
            uow.outbox.enqueue(rows)
