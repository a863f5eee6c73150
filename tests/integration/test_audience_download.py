"""Audience downloads (AUD-9): the ZIP's rows are exactly the members' identities of the
types chosen, in MPID order, one CSV per audience and a manifest that counts them; a sample
is the first N users of the full download. A property over random audiences on the memory
store, and the same download on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.audiences.definition import AudienceDef
from kindred.domain.errors import InvalidBatch, NotFound
from kindred.services.audiences.downloads import AudienceDownloads, Download
from kindred.storage.memory import MemoryStore
from tests.integration.forwarding_world import World
from tests.pg import temporary_database

__all__: list[str] = []

TYPES = ("customer_id", "email", "ios_idfv", "android_uuid")


class Person:
    def __init__(self, n: int, tier: str, email: bool, idfv: bool) -> None:
        self.customer = f"c{n}"
        self.tier = tier
        self.email = f"p{n}@example.com" if email else None
        self.idfv = f"idfv-{n}" if idfv else None
        self.mpid = 0

    def body(self) -> dict[str, Any]:
        identities = {"customer_id": self.customer}
        if self.email:
            identities["email"] = self.email
        device = {"platform": "iOS", "ios_idfv": self.idfv} if self.idfv else {}
        return {
            "environment": "production",
            "user_identities": identities,
            "user_attributes": {"tier": self.tier},
            "device_info": device,
            "events": [],
        }

    def rows(self, types: list[str]) -> list[tuple[str, str]]:
        values = {"customer_id": self.customer, "email": self.email, "ios_idfv": self.idfv}
        return [(t, values[t]) for t in types if values.get(t) is not None]  # type: ignore[misc]


def populate(world: World, people: list[Person]) -> None:
    audiences = world.container.audiences
    for tier in ("gold", "silver"):
        audiences.create(
            AudienceDef(
                name=f"{tier.title()} members",
                workspaces=[1],
                criteria={"attribute": "tier", "op": "equals", "value": tier},
            )
        )
    audiences.set_status(1, "active")
    audiences.set_status(2, "active")
    for person in people:
        outcome = world.send(person.body())
        assert outcome.mpid is not None
        person.mpid = outcome.mpid


def read_zip(data: bytes) -> tuple[dict[str, Any], dict[str, list[list[str]]]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names[-1] == "manifest.json"
        manifest = json.loads(archive.read("manifest.json"))
        files = {
            name: list(csv.reader(io.StringIO(archive.read(name).decode()))) for name in names[:-1]
        }
    return manifest, files


def written(download: Download) -> bytes:
    return b"".join(download.chunks())


def expected(people: list[Person], tier: str, types: list[str]) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for person in sorted(people, key=lambda p: p.mpid):
        if person.tier == tier:
            found.extend((str(person.mpid), v, t) for t, v in person.rows(types))
    return found


def check(
    world: World, people: list[Person], types: list[str], sample: int | None, page: int
) -> None:
    downloads = AudienceDownloads(
        world.container.store, world.container.audiences, world.clock, page=page
    )
    download = downloads.prepare([1, 2], types, sample)
    manifest, files = read_zip(written(download))
    assert download.manifest == manifest
    assert manifest["audience_ids"] == [1, 2]
    assert manifest["included_identities"] == types
    assert manifest["sample"] == sample
    assert [f["file_name"].split("_")[0] for f in manifest["files"]] == ["1", "2"]
    total = 0
    for entry, tier in zip(manifest["files"], ("gold", "silver"), strict=True):
        rows = files[entry["file_name"]]
        assert rows[0] == ["mpid", "scanned_timestamp_ms", "identity_value", "identity_type"]
        got = [(r[0], r[2], r[3]) for r in rows[1:]]
        assert {int(r[1]) for r in rows[1:]} <= {world.clock.now_ms()}
        full = expected(people, tier, types)
        users = list(dict.fromkeys(m for m, _, _ in full))
        if sample is None:
            assert got == full
        else:  # the first users in MPID order, every row of each
            kept = set(users[:sample])
            assert got == [r for r in full if r[0] in kept]
        assert entry["total_rows"] == len(got)
        assert entry["total_users"] == len({m for m, _, _ in got})
        assert entry["total_users"] <= (sample or len(users))
        for id_type in types:
            assert entry["rows_by_identity"][id_type] == sum(1 for r in got if r[2] == id_type)
        total += len(got)
    assert manifest["total_rows"] == total


people_strategy = st.lists(
    st.tuples(st.sampled_from(["gold", "silver", "bronze"]), st.booleans(), st.booleans()),
    max_size=14,
)
types_strategy = st.lists(st.sampled_from(TYPES), min_size=1, max_size=len(TYPES), unique=True).map(
    list
)


@pytest.fixture
def memory_world(tmp_path: Path) -> Iterator[World]:
    world = World(tmp_path, "", store=MemoryStore())
    yield world
    world.close()


@settings(max_examples=30)
@given(
    specs=people_strategy,
    types=types_strategy,
    sample=st.none() | st.integers(1, 6),
    page=st.integers(1, 5),
)
def test_the_zip_rows_are_the_members_identities_of_the_chosen_types(
    tmp_path_factory: pytest.TempPathFactory,
    specs: list[tuple[str, bool, bool]],
    types: list[str],
    sample: int | None,
    page: int,
) -> None:
    world = World(tmp_path_factory.mktemp("download"), "", store=MemoryStore())
    try:
        people = [Person(n, *spec) for n, spec in enumerate(specs)]
        populate(world, people)
        check(world, people, types, sample, page)
    finally:
        world.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "sqlite":
        world = World(tmp_path, "")
        yield world
        world.close()
        return
    from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415 - PostgreSQL only

    with temporary_database() as conninfo:
        parts = conninfo_to_dict(conninfo)
        host, port = parts.get("host", "127.0.0.1"), parts.get("port", 5432)
        url = f"postgresql://{parts.get('user', 'postgres')}@{host}:{port}/{parts['dbname']}"
        world = World(tmp_path, "", url)
        yield world
        world.close()


def test_the_sql_stores_download_the_same(sql_world: World) -> None:
    people = [Person(n, ("gold", "silver")[n % 2], n % 3 == 0, n % 4 != 1) for n in range(40)]
    populate(sql_world, people)
    check(sql_world, people, ["email", "customer_id", "ios_idfv"], None, 7)
    check(sql_world, people, ["ios_idfv"], 5, 3)


def test_a_download_is_refused_before_anything_is_read(memory_world: World) -> None:
    populate(memory_world, [Person(1, "gold", True, True)])
    downloads = memory_world.container.downloads
    with pytest.raises(NotFound):
        downloads.prepare([1, 99], ["email"], None)
    with pytest.raises(InvalidBatch, match=r"identity_types\[1\]"):
        downloads.prepare([1], ["email", "shoe_size"], None)
    with pytest.raises(InvalidBatch, match="identity_types"):
        downloads.prepare([1], [], None)
    with pytest.raises(InvalidBatch, match="sample"):
        downloads.prepare([1], ["email"], 0)
    # spellings made canonical, each once; an audience named twice is one file
    download = downloads.prepare([1, 1], ["Email", "email", "ios_vendor_id"], None)
    assert download.identity_types == ["email", "ios_idfv"]
    assert [p.audience_id for p in download.parts] == [1]
    manifest, _ = read_zip(written(download))
    assert manifest["total_rows"] == 2
