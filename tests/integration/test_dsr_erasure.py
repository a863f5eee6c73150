"""Data subject requests through the container (RET-3): an erasure removes the subject from
every store (profile, merged stub, links, event log, rejects, ledger, membership log,
outbox) and sends removals to the audience output; nothing of anyone else changes; access
and portability find the subject's data; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest

from kindred.attributes.definition import CalculatedDef
from kindred.audiences.definition import AudienceDef
from kindred.domain.dsr import DAY_MS, DsrStatus
from kindred.domain.errors import Conflict, Gone, NotFound
from kindred.domain.identities import IdentityKey
from kindred.services.writes.commands import AliasCall, Refused
from kindred.wire.dsr import parse_request
from tests.integration.forwarding_world import World, batch

CONFIG = """
[[outputs]]
name = "files"
kind = "jsonl"
directory = "{out}"

[[audience_connections]]
name = "gold-to-files"
audience_id = 1
output = "files"
identity_types = ["email", "customer_id"]

[[audience_connections]]
name = "buyers-to-files"
audience_id = 2
output = "files"
identity_types = ["email"]

[[event_connections]]
name = "server-to-files"
input = "server"
output = "files"
"""


def lines(out: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(out.glob("files-*.jsonl")):
        found += [json.loads(line) for line in path.read_text().splitlines()]
    return found


def request(kind: str, identities: dict[str, str], **extension: Any) -> bytes:
    body = {
        "regulation": "gdpr",
        "subject_request_id": str(uuid.uuid4()),
        "subject_request_type": kind,
        "submitted_time": "2023-11-14T22:13:20Z",
        "subject_identities": {t: {"value": v, "encoding": "raw"} for t, v in identities.items()},
        "extensions": {"opendsr.mparticle.com": extension},
    }
    return msgspec.json.encode(body)


def populated(world: World) -> int:
    """Ada (in two audiences, a calculated attribute, a merged stub, a refused batch)
    and Bo; Ada's MPID."""
    c = world.container
    c.audiences.create(
        AudienceDef(
            name="Gold",
            workspaces=[1],
            criteria={"attribute": "tier", "op": "equals", "value": "gold"},
        ),
        created_by="test",
    )
    c.audiences.create(
        AudienceDef(
            name="Buyers",
            workspaces=[1],
            criteria={"attribute": "buyer", "op": "equals", "value": "yes"},
        ),
        created_by="test",
    )
    c.audiences.set_status(1, "active")
    c.audiences.set_status(2, "active")
    plays = c.calculated.create(
        CalculatedDef(
            name="plays",
            workspace_id=1,
            draft={"calculation_type": "count", "event": {"event": "custom_event", "name": "Play"}},
        )
    )
    c.calculated.activate(plays.id)
    while c.calculated_backfill.run():
        pass
    ada = batch("ada", "Play", "Play", tier="gold", buyer="yes")
    ada["user_identities"]["email"] = "ada@example.com"
    world.send(ada)
    bo = batch("bo", "Play", tier="gold", buyer="yes")
    bo["user_identities"]["email"] = "bo@example.com"
    world.send(bo)
    # An anonymous profile of Ada's, folded into hers by an alias: a stub.
    anonymous = world.send(
        {"environment": "production", "user_identities": {"other": "ada-anon"}, "events": []}
    )
    store = c.store
    (ada_mpid,) = store.find_profiles("a1", IdentityKey("customer_id", "ada"))
    assert anonymous.mpid is not None
    c.commands.run(
        AliasCall(
            scope="a1",
            received_ms=world.clock.now_ms(),
            source=anonymous.mpid,
            destination=ada_mpid,
            start_ms=world.clock.now_ms() - 1000,
            end_ms=world.clock.now_ms(),
            max_merged=100,
        )
    )
    c.commands.run(
        Refused(
            "web",
            world.clock.now_ms(),
            "quarantined",
            "bad",
            b'{"user_identities":{"email":"ada@example.com"},"x":[}',
        )
    )
    profile = store.get_profile(ada_mpid)
    assert profile is not None
    assert set(profile.memberships) == {1, 2}
    assert profile.workspaces[1].calculated
    return ada_mpid


@pytest.mark.usefixtures("store_url")
def test_an_erasure_removes_the_subject_everywhere(tmp_path: Path, store_url: str | None) -> None:
    out = tmp_path / "out"
    world = World(tmp_path, CONFIG.format(out=out), store_url)
    try:
        c = world.container
        ada = populated(world)
        bo_mpid = c.store.find_profiles("a1", IdentityKey("customer_id", "bo"))[0]
        bo_before = c.store.get_profile(bo_mpid)
        assert c.store.count_pending()  # rows waiting for the file output, Ada's among them
        ws = c.tenancy.workspaces[1]
        raw = request("erasure", {"email": "ada@example.com"})
        made = c.dsr.create(ws, "server", parse_request(raw), raw)
        assert made.due_ms == world.clock.now_ms() + 7 * DAY_MS
        assert c.dsr.run_due().completed == 0  # waiting
        with pytest.raises(Conflict):
            c.dsr.create(
                ws, "server", parse_request(request("erasure", {"email": "ada@example.com"})), raw
            )
        world.clock.advance(7 * DAY_MS)
        assert c.dsr.run_due().completed == 1
        done = c.dsr.get(1, made.request_id)
        assert done.status == DsrStatus.COMPLETED
        assert done.summary is not None
        assert (done.summary.profiles, done.summary.merged_profiles, done.summary.memberships) == (
            1,
            1,
            2,
        )
        assert done.summary.rejects == 1
        assert done.summary.merges == 1

        store = c.store
        assert store.get_profile(ada) is None
        assert store.find_profiles("a1", IdentityKey("email", "ada@example.com")) == []
        assert all(e.mpid != ada for e in store.read_log(0, 1000))
        assert all(b"ada" not in e.body for e in store.read_log(0, 1000))
        assert store.list_rejects(None, 10) == []
        assert store.list_merges(None, 10) == []
        assert [
            c.reason
            for c in store.membership_log(audience_id=None, mpid=ada, until_ms=2**62, limit=10)
        ] == ["erased", "erased"]
        assert store.get_profile(bo_mpid) == bo_before

        for lane in c.delivery.lanes():
            while lane.step():
                pass
            lane.release()
        sent = lines(out)
        removals = [
            (m["audience_id"], m["identity_type"], m["identity"])
            for m in sent
            if m.get("action") == "delete"
        ]
        assert sorted(removals) == [
            (1, "customer_id", "ada"),
            (1, "email", "ada@example.com"),
            (2, "email", "ada@example.com"),
        ]
        events = [m for m in sent if "events" in m]
        assert all(m.get("mpid") != str(ada) for m in events)  # Ada's waiting batches went
        assert store.count_pending() == {}

        # A later batch with the same identities starts a new profile.
        again = batch("ada", "Play")
        outcome = world.send(again)
        assert outcome.mpid not in (None, ada)
        fresh = store.get_profile(outcome.mpid or 0)
        assert fresh is not None
        assert fresh.memberships == {}
    finally:
        world.close()


@pytest.mark.usefixtures("store_url")
def test_access_and_portability(tmp_path: Path, store_url: str | None) -> None:
    world = World(tmp_path, CONFIG.format(out=tmp_path / "out"), store_url)
    try:
        c = world.container
        ada = populated(world)
        ws = c.tenancy.workspaces[1]
        made = {}
        for kind in ("access", "portability"):
            raw = request(kind, {"controller_customer_id": "ada"})
            made[kind] = c.dsr.create(ws, "server", parse_request(raw), raw)
        nobody = request("portability", {"email": "nobody@example.com"})
        made["nobody"] = c.dsr.create(ws, "server", parse_request(nobody), nobody)
        with pytest.raises(NotFound):
            c.dsr.results(1, made["access"].request_id)  # not yet done
        assert c.dsr.run_due().completed == 3
        document = json.loads(c.dsr.results(1, made["portability"].request_id).body)
        (profile,) = document["profiles"]
        assert profile["mpid"] == str(ada)
        assert profile["user_identities"]["email"] == "ada@example.com"
        assert {m["name"] for m in profile["audience_memberships"]} == {"Gold", "Buyers"}
        assert profile["workspaces"]["1"]["attributes"]["plays"] == 2
        assert len(document["events"]) == 2
        assert len(document["merges"]) == 1
        text = c.dsr.results(1, made["access"].request_id)
        assert text.media_type.startswith("text/plain")
        assert b"ada@example.com" in text.body
        with pytest.raises(NotFound):
            c.dsr.results(1, made["nobody"].request_id)
        with pytest.raises(NotFound):
            c.dsr.results(2, made["portability"].request_id)
        world.clock.advance(7 * DAY_MS)
        assert c.dsr.run_due().results_dropped == 2
        with pytest.raises(Gone):
            c.dsr.results(1, made["portability"].request_id)
        assert c.store.dsr_result(1, made["portability"].request_id) is None
    finally:
        world.close()


def test_a_pending_erasure_can_be_cancelled(tmp_path: Path) -> None:
    world = World(tmp_path, CONFIG.format(out=tmp_path / "out"))
    try:
        c = world.container
        ada = populated(world)
        ws = c.tenancy.workspaces[1]
        raw = request("erasure", {"email": "ada@example.com"}, skip_waiting_period=True)
        made = c.dsr.create(ws, "server", parse_request(raw), raw)
        cancelled = c.dsr.cancel(1, made.request_id)
        assert cancelled.status == DsrStatus.CANCELLED
        with pytest.raises(Conflict):
            c.dsr.cancel(1, made.request_id)
        assert c.dsr.run_due().completed == 0
        assert c.store.get_profile(ada) is not None
    finally:
        world.close()
