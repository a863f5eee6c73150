"""Audience downloads (AUD-9) and bulk connection (AUD-10) end to end, against a real
`kindred serve`: thousands of members sent over HTTP, their audiences downloaded as a ZIP
checked row by row (and by `kindred audiences download`); two audiences connected to a
webhook in one request, each one's members arriving as the adds of its initial sync."""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import CONFIG, Server, forwarding_config, serving
from tests.receiver import Receiver, receiving

pytestmark = pytest.mark.e2e

SERVER = ("server-key", "server-secret")
ADMIN = {"Authorization": "Bearer e2e-admin-token"}
PEOPLE = 2400
HEADER = ["mpid", "scanned_timestamp_ms", "identity_value", "identity_type"]


def tier(n: int) -> str:
    return ("gold", "silver", "bronze")[n % 3]


def identities(n: int) -> dict[str, str]:
    found = {"customer_id": f"dl-{n}"}
    if n % 4:
        found["email"] = f"dl{n}@example.com"
    return found


def idfv(n: int) -> str | None:
    return f"idfv-{n}" if n % 5 == 0 else None


def body(n: int) -> dict[str, Any]:
    device = {"platform": "iOS", "ios_idfv": idfv(n)} if idfv(n) else {}
    return {
        "environment": "production",
        "user_identities": identities(n),
        "user_attributes": {"tier": tier(n)},
        "device_info": device,
        "events": [],
    }


def make_audience(server: Server, name: str, value: str) -> int:
    made = httpx.post(
        f"{server.url}/admin/v1/audiences",
        headers=ADMIN,
        json={
            "name": name,
            "workspaces": [1],
            "criteria": {"attribute": "tier", "op": "equals", "value": value},
        },
    )
    assert made.status_code == 201, made.text
    audience_id = int(made.json()["id"])
    active = httpx.post(f"{server.url}/admin/v1/audiences/{audience_id}/activate", headers=ADMIN)
    assert active.status_code == 200, active.text
    return audience_id


def send_people(server: Server, numbers: range) -> None:
    batches = [body(n) for n in numbers]
    for start in range(0, len(batches), 100):
        for _ in range(60):  # the input's rate limit: wait as told
            sent = httpx.post(
                f"{server.url}/v2/bulkevents",
                content=json.dumps(batches[start : start + 100]),
                auth=SERVER,
                timeout=30,
            )
            if sent.status_code != 429:
                break
            time.sleep(float(sent.headers.get("retry-after", "1")))
        assert sent.status_code == 202, sent.text


def expected_rows(value: str, types: list[str]) -> dict[str, list[tuple[str, str]]]:
    """customer_id -> the (value, type) rows its member gives, in the order of `types`."""
    found: dict[str, list[tuple[str, str]]] = {}
    for n in range(PEOPLE):
        if tier(n) != value:
            continue
        held = identities(n)
        device = idfv(n)
        if device is not None:
            held["ios_idfv"] = device
        found[f"dl-{n}"] = [(held[t], t) for t in types if t in held]
    return found


def check_file(rows: list[list[str]], value: str, types: list[str], sample: int | None) -> int:
    """Row by row: each member's rows together, in MPID order, exactly its identities of
    the types asked for; the whole audience, or `sample` users of it. The users seen."""
    assert rows[0] == HEADER
    wanted = expected_rows(value, types)
    by_mpid: dict[int, list[tuple[str, str]]] = {}
    order: list[int] = []
    for mpid, scanned, identity_value, identity_type in rows[1:]:
        assert int(scanned) > 1_600_000_000_000
        if not order or order[-1] != int(mpid):
            assert int(mpid) not in by_mpid, "a member's rows are together"
            order.append(int(mpid))
        by_mpid.setdefault(int(mpid), []).append((identity_value, identity_type))
    assert order == sorted(order)
    seen = set()
    for got in by_mpid.values():
        customer = next(v for v, t in got if t == "customer_id")
        assert got == wanted[customer]
        seen.add(customer)
    if sample is None:
        assert seen == set(wanted)
    else:
        assert len(seen) == sample
    return len(seen)


def unzip(data: bytes) -> tuple[dict[str, Any], dict[str, list[list[str]]]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        manifest = json.loads(archive.read("manifest.json"))
        files = {
            f["file_name"]: list(csv.reader(io.StringIO(archive.read(f["file_name"]).decode())))
            for f in manifest["files"]
        }
    return manifest, files


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


@pytest.fixture
def hook_server(tmp_path: Path, receiver: Receiver) -> Iterator[Server]:
    yield from serving(
        tmp_path,
        CONFIG.read_text() + forwarding_config("hook", receiver.url) + "batch_size = 200\n",
    )


def test_an_audience_downloads_over_http_row_by_row(hook_server: Server, tmp_path: Path) -> None:
    server = hook_server
    gold = make_audience(server, "Gold members", "gold")
    silver = make_audience(server, "Silver members", "silver")
    send_people(server, range(PEOPLE))
    types = ["customer_id", "email", "ios_idfv"]

    with httpx.stream(
        "GET",
        f"{server.url}/admin/v1/audiences/{gold}/download",
        params=[("identity_types", "customer_id,email"), ("identity_types", "ios_idfv")],
        headers=ADMIN,
        timeout=60,
    ) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"] == "application/zip"
        assert "transfer-encoding" in answer.headers  # streamed, no length known up front
        disposition = answer.headers["content-disposition"]
        data = b"".join(answer.iter_bytes())
    manifest, files = unzip(data)
    assert disposition.endswith(f'filename="{manifest["archive_name"]}"')
    assert manifest["audience_ids"] == [gold]
    assert manifest["included_identities"] == types
    ((name, rows),) = files.items()
    assert name.startswith(f"{gold}_GoldMembers_")
    users = check_file(rows, "gold", types, None)
    assert users == PEOPLE // 3
    entry = manifest["files"][0]
    assert (entry["total_users"], entry["total_rows"]) == (users, len(rows) - 1)
    assert manifest["total_rows"] == len(rows) - 1
    assert sum(manifest["rows_by_identity"].values()) == len(rows) - 1

    # two audiences in one ZIP, a sample of each
    answer = httpx.get(
        f"{server.url}/admin/v1/audiences/download",
        params={"audience_ids": f"{silver},{gold}", "identity_types": "email", "sample": "25"},
        headers=ADMIN,
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    manifest, files = unzip(answer.content)
    assert manifest["audience_ids"] == [silver, gold]
    assert manifest["sample"] == 25
    silver_file, gold_file = (files[f["file_name"]] for f in manifest["files"])
    # a sample of emails: 25 users that have one (customer ids not asked for)
    for rows in (silver_file, gold_file):
        assert rows[0] == HEADER
        assert len(rows) - 1 == 25
        assert {r[3] for r in rows[1:]} == {"email"}
    assert {r[2] for r in gold_file[1:]} <= {
        v for values in expected_rows("gold", ["email"]).values() for v, _ in values
    }

    # refusals are ordinary answers, before anything is streamed
    unknown = httpx.get(
        f"{server.url}/admin/v1/audiences/{gold}/download",
        params={"identity_types": "email,shoe_size"},
        headers=ADMIN,
    )
    assert unknown.status_code == 400
    assert "identity_types[1]" in unknown.text
    missing = httpx.get(
        f"{server.url}/admin/v1/audiences/9999/download",
        params={"identity_types": "email"},
        headers=ADMIN,
    )
    assert missing.status_code == 404
    assert (
        httpx.get(
            f"{server.url}/admin/v1/audiences/{gold}/download", params={"identity_types": "email"}
        ).status_code
        == 401
    )

    # the CLI writes the same download to a file
    out = tmp_path / "gold.zip"
    printed = server.cli(
        "audiences",
        "download",
        str(gold),
        "--identity-type",
        "customer_id",
        "--identity-type",
        "email",
        "--identity-type",
        "ios_idfv",
        "--out",
        str(out),
    )
    manifest, files = unzip(out.read_bytes())
    assert json.loads(printed.stdout)["total_rows"] == manifest["total_rows"]
    ((rows,),) = [list(files.values())]
    check_file(rows, "gold", types, None)
    assert not (tmp_path / "gold.zip.partial").exists()


def test_bulk_connection_sends_each_audience_its_members(
    hook_server: Server, receiver: Receiver
) -> None:
    server = hook_server
    gold = make_audience(server, "Gold members", "gold")
    silver = make_audience(server, "Silver members", "silver")
    send_people(server, range(60))
    members = {
        value: {f"dl-{n}" for n in range(60) if tier(n) == value} for value in ("gold", "silver")
    }

    url = f"{server.url}/admin/v1/connections/audiences/bulk"
    refused = httpx.post(
        url,
        headers=ADMIN,
        json={"output": "hook", "identity_types": ["customer_id"], "audiences": [gold, 9999]},
    )
    assert refused.status_code == 400
    assert "audiences[1]" in refused.text
    twice = httpx.post(
        url,
        headers=ADMIN,
        json={
            "output": "hook",
            "identity_types": ["customer_id"],
            "audiences": [
                {"audience_id": gold, "name": "same"},
                {"audience_id": silver, "name": "same"},
            ],
        },
    )
    assert twice.status_code == 400
    assert "audiences[1]" in twice.text
    listed = httpx.get(f"{server.url}/admin/v1/connections", headers=ADMIN).json()
    assert listed["audience_connections"] == []  # all or nothing

    made = httpx.post(
        url,
        headers=ADMIN,
        json={
            "output": "hook",
            "identity_types": ["customerid"],
            "audiences": [gold, {"audience_id": silver, "name": "silver-to-hook"}],
        },
    )
    assert made.status_code == 201, made.text
    assert [(c["name"], c["audience_id"], c["identity_types"]) for c in made.json()] == [
        (f"hook-{gold}", gold, ["customer_id"]),
        ("silver-to-hook", silver, ["customer_id"]),
    ]
    messages = receiver.wait_for(len(members["gold"]) + len(members["silver"]))
    for audience_id, value in ((gold, "gold"), (silver, "silver")):
        adds = [m for m in messages if m["audience_id"] == audience_id]
        assert {m["action"] for m in adds} == {"add"}
        assert {m["identity"] for m in adds} == members[value]
    again = httpx.post(
        url,
        headers=ADMIN,
        json={"output": "hook", "identity_types": ["email"], "audiences": [gold]},
    )
    assert again.status_code == 400  # its name is in use: a bulk request makes, never replaces
    assert f"hook-{gold}" in again.text
