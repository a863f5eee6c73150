"""What A/B tests (AUD-8) ask of every store: a test kept among the run-time definitions
(kind `audience_test`) raises the definitions' version when saved or deleted, so every
process reads it at the version of its transaction; and ending a test starts its sending
variation connections' syncs over (their farewell), on every store."""

from __future__ import annotations

import msgspec

from kindred.audiences.abtest import AbTest, Variation
from kindred.domain.forwarding import AudienceConnection, OutputDef
from kindred.ports import Store
from kindred.services.forwarding.abtests import TEST_KIND, AbTestBook
from kindred.services.forwarding.catalog import OutputCatalog, OutputsAndConnections
from tests.unit.services.test_forwarding_catalog import TENANCY

__all__: list[str] = []

HOOK = OutputDef(name="hook", kind="webhook", url="http://127.0.0.1:9/x")
TEST = AbTest(
    audience_id=4,
    salt="00ff" * 8,
    variations=[Variation(name="Email", percentage=30)],
    created_ms=10,
    updated_ms=10,
)


def wired(store: Store) -> tuple[AbTestBook, OutputCatalog]:
    """A process's book and catalog on the store, as the composition root wires them."""
    catalog = OutputCatalog(store, TENANCY, OutputsAndConnections(outputs=[HOOK]))
    tests = AbTestBook(store, catalog)
    catalog.check_variation = tests.check_connection
    return tests, catalog


def test_a_test_is_kept_and_raises_the_definitions_version(store: Store) -> None:
    tests, _ = wired(store)
    before = store.definitions_version()
    tests.save(TEST)
    saved = store.definitions_version()
    assert saved > before
    assert tests.at(saved) == {4: TEST}
    assert store.list_definitions(TEST_KIND) == [msgspec.json.encode(TEST)]
    # Another process: a book of its own on the same store reads the same salt.
    assert wired(store)[0].current()[4].salt == TEST.salt
    assert tests.remove(4)
    assert store.definitions_version() > saved
    assert tests.current() == {}
    assert not tests.remove(4)


def test_ending_a_test_starts_the_farewell_of_its_sending_connections(store: Store) -> None:
    tests, catalog = wired(store)
    tests.save(TEST)
    for name, variation, enabled in (
        ("email", "Email", True),
        ("control", "Control", False),
        ("all", None, True),
    ):
        connection = AudienceConnection(
            name=name,
            audience_id=4,
            output="hook",
            identity_types=["customer_id"],
            variation=variation,
            enabled=enabled,
        )
        catalog.save("audience_connection", msgspec.json.encode(connection))
    store.begin_sync("email", 4, 0, 20, discard=False)
    store.finish_sync("email", 1, 30)

    assert tests.end(TEST, now_ms=50) == ["email"]
    ended = tests.current()[4]
    assert ended.ended_ms == 50
    assert ended.farewell_after == {"email": 1}  # the farewell: the sync after the first
    sync = store.sync_state("email")
    assert sync is not None
    assert sync.status == "waiting"
    names = {c.name for c in catalog.current().audience_connections}
    assert names == {"email", "all"}  # the disabled one deleted at once

    tests.retire("email")
    assert {c.name for c in catalog.current().audience_connections} == {"all"}
    assert tests.current() == {}
