"""Audience A/B tests as forwarding sees them (AUD-8, ENR-4): the tests kept in the store,
at a definitions version, and the end of a test's variation connections.

A test is kept among the run-time definitions (kind `audience_test`, named by its audience
id), so saving or deleting it raises the definitions' version like any connection: the
router writes a variation connection's rows under the test of its transaction's version.

Deleting a test whose variation connections are sending ends them in two steps. The test
is kept, marked ended (the router then writes no more rows for them), and each connection's
sync starts over as a farewell: its lane pages through the audience's members as an initial
sync does, sending a removal for each member of its variation, and when done the connection
is deleted (`retire`), and the test with the last of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Protocol

import msgspec

from kindred.audiences.abtest import AbTest
from kindred.domain.errors import ConfigError, NotFound
from kindred.domain.forwarding import AudienceConnection
from kindred.ports import DefinitionsVersion, OutputDefinitions, SyncStore
from kindred.services.definitions import Versioned
from kindred.services.forwarding.catalog import OutputCatalog

__all__ = ["TEST_KIND", "AbTestBook"]

TEST_KIND = "audience_test"

_TEST = msgspec.json.Decoder(AbTest)


class _BookStore(OutputDefinitions, DefinitionsVersion, SyncStore, Protocol):
    """Where tests are kept, the definitions' version, and the connections' syncs."""


class AbTestBook:
    """The audiences' tests: kept, read at a definitions version, and ended."""

    def __init__(self, store: _BookStore, catalog: OutputCatalog) -> None:
        self._store = store
        self._catalog = catalog
        self._versions = Versioned(store, self._load)

    def at(self, version: int) -> Mapping[int, AbTest]:
        """Every test by audience id, as of the definitions version a transaction read."""
        return self._versions.at(version)

    def current(self) -> Mapping[int, AbTest]:
        return self._versions.current()

    def get(self, audience_id: int) -> AbTest | None:
        return self.current().get(audience_id)

    def save(self, test: AbTest) -> AbTest:
        self._store.save_definition(TEST_KIND, str(test.audience_id), msgspec.json.encode(test))
        return test

    def remove(self, audience_id: int) -> bool:
        return self._store.delete_definition(TEST_KIND, str(audience_id))

    def audience_connections(self, audience_id: int) -> list[AudienceConnection]:
        """The audience's connections (full audience and variations), as last committed."""
        return [
            c for c in self._catalog.current().audience_connections if c.audience_id == audience_id
        ]

    def connections(self, audience_id: int) -> list[AudienceConnection]:
        """The audience's variation connections, as last committed."""
        return [c for c in self.audience_connections(audience_id) if c.variation is not None]

    def check_connection(self, connection: AudienceConnection) -> None:
        """A variation connection names a variation of its audience's running test
        (ConfigError naming the connection when not)."""
        if connection.variation is None:
            return
        where = f"audience_connections[{connection.name!r}].variation"
        test = self.get(connection.audience_id)
        if test is None or test.ended_ms is not None:
            raise ConfigError(f"{where}: audience {connection.audience_id} has no A/B test")
        if connection.variation not in test.names():
            known = ", ".join(repr(n) for n in test.names())
            raise ConfigError(
                f"{where}: the test of audience {connection.audience_id} has no variation"
                f" {connection.variation!r} (it has {known})"
            )

    def end(self, test: AbTest, now_ms: int) -> list[str]:
        """Delete the test: its variation connections that send (enabled, with their output)
        begin their farewell and the test is kept ended until they are done; the others are
        deleted now (and the test with them when none sends). The connections ending."""
        defs = self._catalog.current()
        ending: list[str] = []
        for c in self.connections(test.audience_id):
            if c.enabled and defs.output(c.output) is not None:
                ending.append(c.name)
            elif not self._catalog.is_declared(c.name):
                self._catalog.delete("audience_connection", c.name)
        if not ending:
            self.remove(test.audience_id)
            return []
        # Ended first: from this version on the router writes no rows for them, and the
        # farewell's pages read every change committed before it. The farewell of each is
        # the sync begun after the generation it has now (a lane that sees the test ended
        # before its sync starts over here starts it over itself).
        generations = {}
        for name in ending:
            sync = self._store.sync_state(name)
            generations[name] = sync.generation if sync is not None else 0
        ended = msgspec.structs.replace(
            test, ended_ms=now_ms, updated_ms=now_ms, farewell_after=generations
        )
        self.save(ended)
        for name in ending:
            self._store.set_sync(name, "waiting")
        return ending

    def retire(self, connection: str) -> None:
        """A variation connection of an ended test whose removals are all sent: deleted
        (one of the config file stays, sending nothing), and the test with the last one."""
        found = next(
            (c for c in self._catalog.current().audience_connections if c.name == connection),
            None,
        )
        if found is None:
            return
        if not self._catalog.is_declared(connection):
            # (Deleted meanwhile by another process: nothing to do.)
            with contextlib.suppress(NotFound, ConfigError):
                self._catalog.delete("audience_connection", connection)
        test = self.get(found.audience_id)
        stored = [
            c for c in self.connections(found.audience_id) if not self._catalog.is_declared(c.name)
        ]
        if test is not None and test.ended_ms is not None and not stored:
            self.remove(found.audience_id)

    def _load(self) -> dict[int, AbTest]:
        tests = (_TEST.decode(doc) for doc in self._store.list_definitions(TEST_KIND))
        return {t.audience_id: t for t in tests}
