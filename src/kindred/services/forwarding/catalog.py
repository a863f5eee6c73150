"""Outputs and connections (TEN-3, ENR-3): the config file's, fixed, and those made through
the admin API, kept in the store; checked together (every name unique, every reference
resolved) and used at the caller's definitions version (`services.definitions`).

An output's secrets (SEC-3; `domain.forwarding.secret_fields`) are kept in the store
encrypted (`SecretBox`, whose key is not in the store), shown masked, and kept when a save
sends the mask back. A secret stored in plaintext by an older version is still read, and
encrypted at the next save or by `encrypt_stored` (run at start).

An audience connection made, enabled again or given another audience starts its initial sync
over, and one disabled or deleted stops it (`SyncStore.set_sync`, discarding its waiting
rows): through the admin API at its save, from the config file at start (`settle_syncs`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from kindred.domain.errors import ConfigError, NotFound, refuse_duplicates
from kindred.domain.forwarding import (
    SEALED,
    AudienceConnection,
    EventConnection,
    OutputDef,
    check_audience_connection,
    check_event_connection,
    check_output,
    masked,
    secret_fields,
    unmasked,
)
from kindred.domain.tenancy import Tenancy
from kindred.ports import (
    DefinitionsVersion,
    OutputDefinitions,
    SecretBox,
    SyncStore,
)
from kindred.services.definitions import Versioned

__all__ = ["OutputCatalog", "OutputsAndConnections"]

log = logging.getLogger("kindred.forwarding")

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


class _CatalogStore(OutputDefinitions, DefinitionsVersion, SyncStore, Protocol):
    """The outputs and connections kept in the store, the definitions' version, and the
    audience connections' initial syncs."""


class OutputCatalog:
    """Outputs and connections: the config file's (fixed) and the admin API's (in the
    store, at the definitions version of the caller: see `services.definitions`)."""

    def __init__(
        self,
        store: _CatalogStore,
        tenancy: Tenancy,
        declared: OutputsAndConnections,
        box: SecretBox | None = None,
    ) -> None:
        """`box`: encrypts the outputs' secrets kept in the store (none: kept as given,
        for tests of other things)."""
        self._store = store
        self._tenancy = tenancy
        self._box = box
        self._declared = self.check(declared)
        self._versions = Versioned(store, lambda: self._merged(self._stored()))
        # An audience connection's variation checked against its audience's A/B test
        # (AUD-8) when saved through the admin API; set by the composition root.
        self.check_variation: Callable[[AudienceConnection], None] = lambda _c: None

    def at(self, version: int) -> OutputsAndConnections:
        """As of the definitions version a transaction read."""
        return self._versions.at(version)

    def current(self) -> OutputsAndConnections:
        """As last committed (outside any transaction)."""
        return self._versions.current()

    def is_declared(self, name: str) -> bool:
        d = self._declared
        return d.output(name) is not None or d.connection(name) is not None

    def outputs_shown(self) -> list[OutputDef]:
        """Every output as the admin API shows it: secrets masked."""
        return [masked(o) for o in self.current().outputs]

    def save(self, kind: str, doc: bytes, *, name: str | None = None) -> object:
        """Validate and keep an output or connection made at run time (an output: returned
        masked). `name`: the one the caller addressed (PUT); the document must agree."""
        if kind not in _KINDS:
            raise NotFound(f"no kind {kind!r}")
        try:
            item: Any = msgspec.json.decode(doc, type=_KINDS[kind])
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ConfigError(f"{kind}: {exc}") from None
        if name is not None and item.name != name:
            raise ConfigError(f"{kind}.name: {item.name!r} is not {name!r}, the one addressed")
        if self.is_declared(item.name):
            raise ConfigError(f"{kind} {item.name!r} is declared in the config file")
        stored = self._stored()
        if isinstance(item, OutputDef):
            if any(v.startswith(SEALED) for v in secret_fields(item).values()):
                raise ConfigError(f"outputs[{item.name!r}]: a secret may not start with {SEALED}")
            previous = next((o for o in stored["output"] if o.name == item.name), None)
            item = unmasked(item, previous)
        before = next((x for x in stored[kind] if x.name == item.name), None)
        _replace(stored, kind, item)
        checked = self.check(self._merged(stored))
        saved = next(x for x in _items(checked, kind) if x.name == item.name)
        if isinstance(saved, AudienceConnection):
            self.check_variation(saved)
        self._store.save_definition(kind, item.name, self._encoded(saved))
        if isinstance(saved, AudienceConnection) and _starts_over(before, saved):
            self._store.set_sync(saved.name, "waiting" if saved.enabled else "off")
        return masked(saved) if isinstance(saved, OutputDef) else saved

    def save_many(self, kind: str, items: list[Any]) -> list[Any]:
        """Keep several new items of one kind at once (a bulk connection, AUD-10): all are
        checked together with everything kept first, and none is saved when one is refused
        (ConfigError naming it). An item of a name in use is refused: this makes, never
        replaces. Then each is saved as `save` does (an audience connection's initial sync
        starting)."""
        if kind not in _KINDS:
            raise NotFound(f"no kind {kind!r}")
        stored = self._stored()
        current = self._merged(stored)
        taken = {o.name for o in current.outputs} | {c.name for c in current.connections()}
        for index, item in enumerate(items):
            if item.name in taken:
                raise ConfigError(f"{kind}s[{index}].name: {item.name!r} is in use")
            taken.add(item.name)
            _replace(stored, kind, item)
        checked = self.check(self._merged(stored))
        names = {item.name for item in items}
        saved = [x for x in _items(checked, kind) if x.name in names]
        order = {item.name: index for index, item in enumerate(items)}
        saved.sort(key=lambda x: order[x.name])
        for item in saved:
            if isinstance(item, AudienceConnection):
                self.check_variation(item)
        for item in saved:
            self._store.save_definition(kind, item.name, self._encoded(item))
            if isinstance(item, AudienceConnection):
                self._store.set_sync(item.name, "waiting" if item.enabled else "off")
        return saved

    def settle_syncs(self) -> None:
        """Every audience connection's sync as its definition says (run at start): a
        disabled one's stopped, one enabled again started over (a new one begins when its
        lane first runs). The config file's change between starts; one saved through the
        admin API was settled at its save, unless the process ended in between."""
        for c in self.current().audience_connections:
            sync = self._store.sync_state(c.name)
            if not c.enabled and (sync is None or sync.status != "off"):
                self._store.set_sync(c.name, "off")
            elif c.enabled and sync is not None and sync.status == "off":
                self._store.set_sync(c.name, "waiting")

    def patch(self, kind: str, name: str, doc: bytes) -> object:
        """Change some settings of a stored output or connection (PATCH): the document's
        keys replace the stored ones, the others are kept (secrets included)."""
        if kind not in _KINDS:
            raise NotFound(f"no kind {kind!r}")
        current = next((x for x in self._stored()[kind] if x.name == name), None)
        if current is None:
            if self.is_declared(name):
                raise ConfigError(f"{kind} {name!r} is declared in the config file")
            raise NotFound(f"no {kind} {name!r}")
        try:
            changes = msgspec.json.decode(doc, type=dict[str, Any])
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ConfigError(f"{kind}: {exc}") from None
        merged = {**msgspec.to_builtins(current), **changes}
        return self.save(kind, msgspec.json.encode(merged), name=name)

    def encrypt_stored(self, *, all_of_them: bool = False) -> int:
        """Encrypt the stored outputs' secrets still in plaintext (kept by an older
        version), or, `all_of_them`, every stored secret again with the key now in use
        (after a rotation of the secrets key). How many outputs were saved again."""
        if self._box is None:
            return 0
        saved = 0
        for doc in self._store.list_definitions("output"):
            raw = msgspec.json.decode(doc, type=OutputDef)
            secrets = secret_fields(raw)
            if not secrets:
                continue
            if not all_of_them and all(v.startswith(SEALED) for v in secrets.values()):
                continue
            opened = self._opened(raw, strict=True)
            self._store.save_definition("output", opened.name, self._encoded(opened))
            saved += 1
        return saved

    def delete(self, kind: str, name: str) -> None:
        if self.is_declared(name):
            raise ConfigError(f"{kind} {name!r} is declared in the config file")
        if kind == "output" and any(c.output == name for c in self.current().connections()):
            raise ConfigError(f"output {name!r} is used by a connection")
        if not self._store.delete_definition(kind, name):
            raise NotFound(f"no {kind} {name!r}")
        if kind == "audience_connection":
            self._store.set_sync(name, "off")

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
        found: dict[str, list[Any]] = {
            kind: [msgspec.json.decode(doc, type=t) for doc in self._store.list_definitions(kind)]
            for kind, t in _KINDS.items()
        }
        found["output"] = [self._opened(o) for o in found["output"]]
        return found

    def _encoded(self, item: Any) -> bytes:
        """The document kept in the store: an output's secrets encrypted."""
        if isinstance(item, OutputDef) and self._box is not None:
            secrets = secret_fields(item)
            if secrets:
                item = msgspec.structs.replace(
                    item, **{key: self._box.seal(value) for key, value in secrets.items()}
                )
        return msgspec.json.encode(item)

    def _opened(self, output: OutputDef, *, strict: bool = False) -> OutputDef:
        """A stored output with its secrets decrypted. One that cannot be (another secrets
        key) keeps them encrypted, and its sends fail saying so; `strict`: ConfigError."""
        secrets = {k: v for k, v in secret_fields(output).items() if v.startswith(SEALED)}
        if not secrets or self._box is None:
            return output
        try:
            return msgspec.structs.replace(
                output, **{key: self._box.open(value) for key, value in secrets.items()}
            )
        except ConfigError as exc:
            if strict:
                raise ConfigError(f"outputs[{output.name!r}]: {exc}") from None
            log.error("output %s: %s", output.name, exc)
            return output

    def _merged(self, stored: dict[str, list[Any]]) -> OutputsAndConnections:
        d = self._declared
        return OutputsAndConnections(
            outputs=[*d.outputs, *stored["output"]],
            event_connections=[*d.event_connections, *stored["event_connection"]],
            audience_connections=[*d.audience_connections, *stored["audience_connection"]],
        )


def _starts_over(before: AudienceConnection | None, saved: AudienceConnection) -> bool:
    """Whether a save makes the connection anew for its output: made, given another
    audience or variation, enabled or disabled."""
    return before is None or (before.audience_id, before.enabled, before.variation) != (
        saved.audience_id,
        saved.enabled,
        saved.variation,
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
