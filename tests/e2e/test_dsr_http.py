"""Data subject requests end to end over HTTP (RET-3, BEY-6): an erasure, made with the
OpenDSR API, waits out its waiting period on the test clock, then removes a subject who is
in two audiences with a connection, has a calculated attribute, pending outbox rows, a
merged stub and a quarantined batch; direct queries on the store (SQLite, PostgreSQL) find
nothing of them afterwards, and the audience output received the removals. Each status
change reached a real callback receiver, signed with the key of the certificate
`/v3/discovery` gives; the signed receipt lists every store part and `kindred dsr verify`
passes, until a row of the subject is put back into the store."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.e2e.conftest import CONFIG, Query, Server, clocked_with_query, make_server, until
from tests.e2e.conftest import admin_json as admin
from tests.e2e.conftest import send_batch as send
from tests.receiver import Answer, Receiver, receiving

pytestmark = pytest.mark.e2e

SERVER = ("server-key", "server-secret")
ADMIN = {"Authorization": "Bearer e2e-admin-token"}
DAY_MS = 86_400_000
ADA_EMAIL = "ada-dsr@example.com"


def config(out: Path) -> str:
    return (
        CONFIG.read_text()
        + f"""
[privacy]
run_interval_s = 0.2

[forwarding]
idle_s = 0.05

[forwarding.retry]
base_s = 30
max_delay_s = 60
max_attempts = 100

[[outputs]]
name = "files"
kind = "jsonl"
directory = "{out}"
accepts_erasures = true

# Nothing listens there: the event connection's rows stay in the outbox, retrying.
[[outputs]]
name = "down"
kind = "webhook"
url = "http://127.0.0.1:9/down"
accepts_erasures = true

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
name = "server-to-down"
input = "server"
output = "down"
"""
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, Query]]:
    yield from clocked_with_query(tmp_path, request.param, config(tmp_path / "out"))


@pytest.fixture
def callbacks() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


def signed_by(certificate_pem: str, body: bytes, signature: str) -> bool:
    """Whether `signature` (base64) is the certificate key's RSA-SHA256 signature of `body`."""
    public = x509.load_pem_x509_certificate(certificate_pem.encode()).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    try:
        public.verify(base64.b64decode(signature), body, padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return False
    return True


def put_back(server: Server, query: Query, sql: str, params: tuple[object, ...]) -> None:
    """A row written straight into the store, beside the running server."""
    if server.env.get("KINDRED_STORE_URL"):
        query(sql + " RETURNING 1", params)
        return
    with sqlite3.connect(server.data_dir / "kindred.db", timeout=10) as conn:
        conn.execute(sql, params)


def identify(server: Server, identities: dict[str, str]) -> int:
    answer = httpx.post(
        f"{server.url}/v1/identify",
        json={"environment": "development", "known_identities": identities},
        auth=SERVER,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return int(answer.json()["mpid"])


def user(customer: str, email: str) -> dict[str, Any]:
    return {
        "environment": "development",
        "user_identities": {"customer_id": customer, "email": email},
        "user_attributes": {"tier": "gold", "buyer": "yes"},
        "events": [
            {
                "event_type": "custom_event",
                "data": {"event_name": "Play", "custom_event_type": "other"},
            }
        ],
    }


def lines(out: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(out.glob("files-*.jsonl")):
        found += [json.loads(line) for line in path.read_text().splitlines()]
    return found


def erasure(identities: dict[str, Any]) -> dict[str, Any]:
    return {
        "regulation": "gdpr",
        "subject_request_id": str(uuid.uuid4()),
        "subject_request_type": "erasure",
        "submitted_time": "2024-05-01T10:00:00Z",
        "api_version": "3.0",
        "subject_identities": identities,
    }


def test_an_erasure_over_http_leaves_nothing_of_the_subject(
    world: tuple[Server, Query], tmp_path: Path, callbacks: Receiver
) -> None:
    server, query = world
    out = tmp_path / "out"
    for n, (name, key) in enumerate((("Gold", "tier"), ("Buyers", "buyer")), start=1):
        value = "gold" if key == "tier" else "yes"
        criteria = {"attribute": key, "op": "equals", "value": value}
        made = admin(
            server, "POST", "/audiences", {"name": name, "workspaces": [1], "criteria": criteria}
        )
        assert made["id"] == n
        admin(server, "POST", f"/audiences/{n}/activate")
    plays = admin(
        server,
        "POST",
        "/calculated-attributes",
        {
            "name": "plays",
            "workspace_id": 1,
            "definition": {
                "calculation_type": "count",
                "event": {"event": "custom_event", "name": "Play"},
            },
        },
    )
    admin(server, "POST", f"/calculated-attributes/{plays['id']}/activation")

    send(server, user("ada-dsr", ADA_EMAIL))
    send(server, user("bo-dsr", "bo-dsr@example.com"))
    ada = identify(server, {"customerid": "ada-dsr"})
    bo = identify(server, {"customerid": "bo-dsr"})
    anonymous = identify(server, {"other": "ada-anon"})
    now = int(time.time() * 1000)
    admin(
        server,
        "POST",
        "/alias",
        {
            "source_mpid": str(anonymous),
            "destination_mpid": str(ada),
            "start_unixtime_ms": now - 60_000,
            "end_unixtime_ms": now,
            "workspace_id": 1,
        },
    )
    quarantined = httpx.post(
        f"{server.url}/v3/JS/web-key/events",
        content=json.dumps({"user_identities": {"email": ADA_EMAIL}, "events": "not a list"}),
        timeout=30,
    )
    assert quarantined.status_code == 202
    until(
        lambda: len([m for m in lines(out) if m.get("identity") == ADA_EMAIL]) == 2,
        "Ada's adds at the audience output",
    )
    profile = server.profile(mpid=str(ada))
    assert profile is not None
    assert set(profile["memberships"]) == {"1", "2"}
    assert profile["workspaces"]["1"]["calculated"]
    assert query("SELECT count(*) FROM outbox WHERE mpid = ?", (ada,))[0][0] > 0
    assert query("SELECT count(*) FROM merges WHERE survivor = ?", (ada,))[0][0] == 1
    bo_before = server.profile(mpid=str(bo))

    # The erasure waits out its seven days on the test clock.
    body = {
        **erasure({"email": {"value": ADA_EMAIL, "encoding": "raw"}}),
        "status_callback_urls": [callbacks.url],
    }
    made = httpx.post(f"{server.url}/v3/requests", json=body, auth=SERVER, timeout=30)
    assert made.status_code == 201, made.text
    assert made.headers["X-OpenDSR-Processor-Domain"] == "opendsr.mparticle.com"
    request_id = made.json()["subject_request_id"]
    status_url = f"{server.url}/v3/requests/{request_id}"
    again = httpx.post(
        f"{server.url}/v3/requests",
        json={**body, "subject_request_id": str(uuid.uuid4())},
        auth=SERVER,
        timeout=30,
    )
    assert again.status_code == 409, again.text
    assert "an open erasure request (pending or in progress)" in again.text
    time.sleep(0.6)  # a few runs of the job: still waiting
    assert httpx.get(status_url, auth=SERVER, timeout=30).json()["request_status"] == "pending"
    assert server.profile(mpid=str(ada)) is not None
    (tmp_path / "clock").write_text(str(7 * DAY_MS + 60_000))
    status = until(
        lambda: (
            (s := httpx.get(status_url, auth=SERVER, timeout=30).json())["request_status"]
            == "completed"
            and s
        ),
        "the erasure to complete",
    )
    assert status["results_url"] is None

    def deletes() -> list[tuple[int, str, str]]:
        return [
            (m["audience_id"], m["identity_type"], m["identity"])
            for m in lines(out)
            if m.get("action") == "delete"
        ]

    # Each audience's removals come in their own delivery: wait for all three lines.
    removals = until(lambda: len(found := deletes()) >= 3 and found, "the removals at the output")
    assert sorted(removals) == [
        (1, "customer_id", "ada-dsr"),
        (1, "email", ADA_EMAIL),
        (2, "email", ADA_EMAIL),
    ]
    until(
        lambda: query("SELECT count(*) FROM outbox WHERE mpid = ?", (ada,))[0][0] == 0,
        "the removals to leave the outbox",
    )

    mpids = (ada, anonymous)
    for table, column in (
        ("profiles", "mpid"),
        ("identities", "mpid"),
        ("event_log", "mpid"),
        ("audience_members", "mpid"),
        ("outbox", "mpid"),
        ("dead_letters", "mpid"),
        ("merges", "survivor"),
        ("merges", "merged"),
    ):
        found = query(f"SELECT count(*) FROM {table} WHERE {column} IN (?, ?)", mpids)
        assert found[0][0] == 0, (table, column)
    assert query(
        "SELECT count(*) FROM identities WHERE id_value IN (?, ?, ?)",
        (ADA_EMAIL, "ada-dsr", "ada-anon"),
    ) == [(0,)]
    for table in ("event_log", "rejects"):
        bodies = [bytes(b) for (b,) in query(f"SELECT body FROM {table}", ())]
        assert not [b for b in bodies if ADA_EMAIL.encode() in b or b"ada-anon" in b], table
    reasons = query("SELECT reason, entered FROM membership_log WHERE mpid = ?", (ada,))
    assert sorted(reasons) == [("erased", False), ("erased", False)] or sorted(reasons) == [
        ("erased", 0),
        ("erased", 0),
    ]
    assert server.profile(mpid=str(ada)) is None
    assert server.profile(mpid=str(bo)) == bo_before

    check_callbacks(server, callbacks, request_id)
    check_erasure_messages(out, status_url, (ada, anonymous))
    check_receipt(server, status, request_id, (ada, anonymous))
    verified = server.cli("dsr", "verify", request_id)
    assert json.loads(verified.stdout)["ok"] is True
    assert "nothing of the subject remains" in verified.stderr

    # The same identities later: a new profile, which a verification does not count.
    send(server, user("ada-dsr", ADA_EMAIL))
    assert identify(server, {"customerid": "ada-dsr"}) not in mpids
    assert server.cli("dsr", "verify", request_id).returncode == 0

    # A row of the erased subject put back into the store: the verification fails.
    put_back(
        server,
        query,
        "INSERT INTO audience_members (audience_id, mpid, name, since_ms) VALUES (?, ?, ?, ?)",
        (1, ada, "Gold", 1),
    )
    failed = server.cli("dsr", "verify", request_id, check=False)
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["residue"]["audience_memberships"] == 1
    assert "audience_memberships: 1 row(s) of the subject remain" in failed.stderr


def check_erasure_messages(out: Path, status_url: str, mpids: tuple[int, int]) -> None:
    """Each output that accepts erasures was sent one erasure message, over one of its
    connections; the request's status tells each one's delivery."""
    sent = until(
        lambda: [m for m in lines(out) if m.get("type") == "erasure"], "the erasure message"
    )
    assert len(sent) == 1
    message = sent[0]
    assert {message["mpid"], *message["merged_mpids"]} == {str(m) for m in mpids}
    assert {"type": "email", "value": ADA_EMAIL} in message["identities"]
    assert {"type": "customer_id", "value": "ada-dsr"} in message["identities"]

    def states() -> dict[str, str]:
        status = httpx.get(status_url, auth=SERVER, timeout=30).json()
        listed = status["extensions"]["opendsr.mparticle.com"]["erasure_messages"]
        return {m["output"]: m["status"] for m in listed}

    # "files" took it; nothing listens for "down", so its message waits in the outbox.
    assert until(lambda: states().get("files") == "delivered" and states(), "delivered") == {
        "files": "delivered",
        "down": "pending",
    }


def check_callbacks(server: Server, callbacks: Receiver, request_id: str) -> None:
    """Each status change reached the receiver, signed by the processor's key."""
    discovery = httpx.get(f"{server.url}/v3/discovery", timeout=30).json()
    certificate = discovery["processor_certificate"]
    assert certificate.startswith("-----BEGIN CERTIFICATE-----")
    until(lambda: len(callbacks.requests) >= 3, "three status callbacks")
    statuses = []
    for received in callbacks.requests:
        assert received["path"] == "/hook"
        signature = received["headers"]["X-OpenDSR-Signature"]
        assert signed_by(certificate, received["body"], signature), received
        assert not signed_by(certificate, received["body"] + b" ", signature)
        status = json.loads(received["body"])
        assert status["subject_request_id"] == request_id
        assert status["controller_id"] == "1"
        statuses.append(status["request_status"])
    assert statuses == ["pending", "in_progress", "completed"]
    completed = json.loads(callbacks.requests[-1]["body"])
    assert completed["extensions"]["opendsr.mparticle.com"]["removed"]["profiles"] == 1


def check_receipt(
    server: Server, status: dict[str, Any], request_id: str, mpids: tuple[int, int]
) -> None:
    """The signed receipt: every store part, what each lost, checked with the certificate."""
    extension = status["extensions"]["opendsr.mparticle.com"]
    assert extension["receipt_url"].endswith(f"/v3/requests/{request_id}/receipt")
    answer = httpx.get(extension["receipt_url"], auth=SERVER, timeout=30)
    assert answer.status_code == 200, answer.text
    signed = answer.json()
    assert signed["algorithm"] == "RSA-SHA256"
    discovery = httpx.get(f"{server.url}/v3/discovery", timeout=30).json()
    assert signed["certificate"] == discovery["processor_certificate"]
    payload = signed["signed_payload"].encode()
    assert signed_by(signed["certificate"], payload, signed["signature"])
    receipt = signed["receipt"]
    assert receipt["receipt_id"] == extension["receipt_id"]
    assert json.loads(payload)["parts"] == receipt["parts"]
    counts = {p["part"]: p["count"] for p in receipt["parts"]}
    assert set(counts) == {
        "profiles",
        "merged_profiles",
        "identity_links",
        "event_log",
        "rejects",
        "audience_memberships",
        "membership_log",
        "calculated_attributes",
        "merge_ledger",
        "outbox",
        "dead_letters",
    }
    assert counts["profiles"] == 1
    assert counts["merged_profiles"] == 1
    assert counts["audience_memberships"] == 2
    assert counts["calculated_attributes"] >= 1
    for part in ("identity_links", "event_log", "rejects", "merge_ledger", "outbox"):
        assert counts[part] >= 1, part
    for part in receipt["parts"]:
        assert len(part["ids"]) == len(part["digests"]) == part["count"]
        assert all(len(d) == 64 for d in part["digests"])
    assert sorted(receipt["subject_mpids"]) == sorted(str(m) for m in mpids)
    outputs = {o["connection"]: o for o in receipt["outputs"] if o["kind"] == "removal"}
    erasures = sorted(
        (o["connection"], o["rows"]) for o in receipt["outputs"] if o["kind"] == "erasure"
    )
    assert erasures == [("buyers-to-files", 1), ("server-to-down", 1)]
    assert outputs["gold-to-files"]["audience_ids"] == [1]
    assert outputs["buyers-to-files"]["audience_ids"] == [2]
    assert ADA_EMAIL not in answer.text
    shown = json.loads(server.cli("dsr", "receipt", request_id).stdout)
    assert shown["signature"] == signed["signature"]
    assert (
        json.loads(server.cli("dsr", "show", request_id).stdout)["receipt_id"]
        == (extension["receipt_id"])
    )
    check_privacy_page(server, extension["receipt_id"], signed["certificate_sha256"])


def check_privacy_page(server: Server, receipt_id: str, fingerprint: str) -> None:
    """The UI's Privacy page lists the receipt with the certificate's fingerprint; the
    receipt's page shows it whole."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        signed_in = client.post("/ui/login", data={"name": "tester", "password": "tester-password"})
        assert signed_in.status_code in (200, 303), signed_in.text
        listing = client.get("/ui/privacy")
        assert listing.status_code == 200
        assert f'href="/ui/privacy/receipts/{receipt_id}"' in listing.text
        assert fingerprint in listing.text
        shown = client.get(f"/ui/privacy/receipts/{receipt_id}")
        assert shown.status_code == 200
        assert "merged profiles" in shown.text
        assert "RSA-SHA256" in shown.text
        assert ADA_EMAIL not in shown.text
        assert client.get(f"/ui/privacy/receipts/{uuid.uuid4()}").status_code == 404


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[Server]:
    clock = tmp_path / "clock"
    clock.write_text("0")
    path = tmp_path / "kindred.toml"
    path.write_text(CONFIG.read_text() + "\n[privacy]\nrun_interval_s = 0.2\n")
    server = make_server(tmp_path, clock_file=clock)
    server.config = path
    server.start()
    try:
        yield server
    finally:
        server.stop()


def portability(identities: dict[str, Any], kind: str = "portability") -> dict[str, Any]:
    return {**erasure(identities), "subject_request_type": kind, "group_id": "g-1"}


def test_access_and_portability_over_http(plain: Server, tmp_path: Path) -> None:
    server = plain
    send(server, user("cy-dsr", "cy-dsr@example.com"))
    email = {"email": {"value": "cy-dsr@example.com", "encoding": "raw"}}
    ids = {}
    for kind in ("portability", "access"):
        made = httpx.post(
            f"{server.url}/v3/requests", json=portability(email, kind), auth=SERVER, timeout=30
        )
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["controller_id"] == "1"
        assert set(body) == {
            "expected_completion_time",
            "received_time",
            "encoded_request",
            "subject_request_id",
            "controller_id",
        }
        ids[kind] = body["subject_request_id"]
    nobody = portability({"email": {"value": "nobody@example.com", "encoding": "raw"}})
    made = httpx.post(f"{server.url}/v3/requests", json=nobody, auth=SERVER, timeout=30)
    ids["nobody"] = made.json()["subject_request_id"]

    def status(request_id: str) -> dict[str, Any]:
        answer = httpx.get(f"{server.url}/v3/requests/{request_id}", auth=SERVER, timeout=30)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    done = until(
        lambda: all(status(i)["request_status"] == "completed" for i in ids.values()),
        "the requests to complete",
    )
    assert done
    shown = status(ids["portability"])
    assert shown["group_id"] == "g-1"
    assert shown["results_url"].endswith(f"/v3/requests/{ids['portability']}/results")
    results = httpx.get(shown["results_url"], auth=SERVER, timeout=30)
    assert results.status_code == 200
    document = results.json()
    assert document["profiles"][0]["user_identities"]["email"] == "cy-dsr@example.com"
    assert document["events"]
    text = httpx.get(status(ids["access"])["results_url"], auth=SERVER, timeout=30)
    assert text.headers["content-type"].startswith("text/plain")
    assert "cy-dsr@example.com" in text.text
    missing = httpx.get(status(ids["nobody"])["results_url"], auth=SERVER, timeout=30)
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["domain"] == "opendsr.mparticle.com"
    listed = httpx.get(f"{server.url}/v3/requests?group_id=g-1", auth=SERVER, timeout=30)
    assert {s["subject_request_id"] for s in listed.json()} == set(ids.values())
    # Seven days on, the results are gone.
    (tmp_path / "clock").write_text(str(7 * DAY_MS + 1000))
    until(
        lambda: httpx.get(shown["results_url"], auth=SERVER, timeout=30).status_code == 410,
        "the results to expire",
    )


def test_refusals_have_opendsr_shape(plain: Server) -> None:
    server = plain
    url = f"{server.url}/v3/requests"
    bad = erasure(
        {
            "email": {"value": "x@example.com", "encoding": "raw"},
            "shoe_size": {"value": "44", "encoding": "raw"},
        }
    )
    bad["extensions"] = {"opendsr.mparticle.com": {"subject_identities": {"mpid": {"value": "12"}}}}
    answer = httpx.post(url, json=bad, auth=SERVER, timeout=30)
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == 400
    reasons = {e["reason"] for e in body["errors"]}
    assert reasons == {"invalid_identity", "mpid_not_alone"}
    assert answer.headers["X-OpenDSR-Processor-Domain"] == "opendsr.mparticle.com"
    assert httpx.post(url, json=bad, timeout=30).status_code == 401
    assert httpx.post(url, json=bad, auth=("server-key", "wrong"), timeout=30).status_code == 401
    good = erasure({"email": {"value": "x@example.com", "encoding": "raw"}})
    assert httpx.post(url, json=good, auth=SERVER, timeout=30).status_code == 201
    duplicate = httpx.post(url, json=good, auth=SERVER, timeout=30)
    assert duplicate.status_code == 400
    assert duplicate.json()["errors"][0]["reason"] == "duplicate_request_id"
    request_url = f"{url}/{good['subject_request_id']}"
    cancelled = httpx.delete(request_url, auth=SERVER, timeout=30)
    assert cancelled.status_code == 200
    assert cancelled.json()["request_status"] == "cancelled"
    assert httpx.delete(request_url, auth=SERVER, timeout=30).status_code == 409
    assert httpx.get(f"{url}/{uuid.uuid4()}", auth=SERVER, timeout=30).status_code == 404
    discovery = httpx.get(f"{server.url}/v3/discovery", timeout=30).json()
    assert discovery["supported_subject_request_types"] == ["access", "portability", "erasure"]
    assert {"identity_type": "email", "identity_format": "raw"} in discovery["supported_identities"]


def test_the_cli_makes_shows_cancels_and_runs_requests(plain: Server) -> None:
    server = plain
    send(server, user("dee-dsr", "dee-dsr@example.com"))
    made = json.loads(
        server.cli(
            "dsr", "create", "--type", "erasure", "--identity", "email=dee-dsr@example.com"
        ).stdout
    )
    assert made["status"] == "pending"
    request_id = made["request_id"]
    shown = json.loads(server.cli("dsr", "show", request_id).stdout)
    assert shown["identities"] == {"email": "dee-dsr@example.com"}
    listed = json.loads(server.cli("dsr", "list").stdout)
    assert [r["request_id"] for r in listed] == [request_id]
    json.loads(server.cli("dsr", "run-due").stdout)
    assert server.profile(identity="email=dee-dsr@example.com") is not None  # still waiting
    done = json.loads(server.cli("dsr", "run-due", "--now", request_id).stdout)
    assert done["status"] == "completed"
    assert done["summary"]["profiles"] == 1
    assert server.profile(identity="email=dee-dsr@example.com") is None
    again = json.loads(server.cli("dsr", "create", "--type", "erasure", "--mpid", "12345").stdout)
    cancelled = json.loads(server.cli("dsr", "cancel", again["request_id"]).stdout)
    assert cancelled["status"] == "cancelled"
    failed = server.cli("dsr", "cancel", again["request_id"], check=False)
    assert failed.returncode == 1
    assert "not pending" in failed.stderr


def test_the_web_ui_lists_the_requests_with_their_status_and_receipt(plain: Server) -> None:
    server = plain
    email = {"email": {"value": "ui-listed@example.com", "encoding": "raw"}}
    send(server, user("ui-listed", "ui-listed@example.com"))
    made = httpx.post(
        f"{server.url}/v3/requests", json=portability(email, "access"), auth=SERVER, timeout=30
    )
    assert made.status_code == 201, made.text
    request_id = made.json()["subject_request_id"]
    until(
        lambda: (
            httpx.get(f"{server.url}/v3/requests/{request_id}", auth=SERVER, timeout=30).json()[
                "request_status"
            ]
            == "completed"
        ),
        "the access request completes",
    )
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        signed_in = browser.post(
            "/ui/login", data={"name": "tester", "password": "tester-password"}
        )
        assert signed_in.status_code == 303, signed_in.text
        listed = browser.get("/ui/privacy")
        assert listed.status_code == 200
        assert request_id in listed.text
        assert "email ui-listed@example.com" in listed.text
        assert '<span class="badge completed">completed</span>' in listed.text
        assert "data found; results kept until" in listed.text
        pending_only = browser.get("/ui/privacy?status=pending")
        assert request_id not in pending_only.text
    assert httpx.get(f"{server.url}/ui/privacy", follow_redirects=False).status_code == 302


def test_status_callbacks_outlive_a_receiver_down_and_a_restart(tmp_path: Path) -> None:
    """The callbacks wait in the outbox while the receiver answers 503, through a crash of
    the server, and arrive in order, signed, once it is up again."""
    with receiving() as receiver:
        receiver.default = Answer(status=503)
        clock = tmp_path / "clock"
        clock.write_text("0")
        path = tmp_path / "kindred.toml"
        path.write_text(
            CONFIG.read_text()
            + """
[privacy]
run_interval_s = 0.2

[forwarding]
idle_s = 0.05
lease_s = 1

[forwarding.retry]
base_s = 0.1
max_delay_s = 0.3
max_attempts = 1000
"""
        )
        server = make_server(tmp_path, clock_file=clock)
        server.config = path
        server.start()
        try:
            send(server, user("eve-dsr", "eve-dsr@example.com"))
            body = {
                **portability({"email": {"value": "eve-dsr@example.com", "encoding": "raw"}}),
                "status_callback_urls": [receiver.url],
            }
            made = httpx.post(f"{server.url}/v3/requests", json=body, auth=SERVER, timeout=30)
            assert made.status_code == 201, made.text
            until(lambda: len(receiver.requests) >= 3, "the receiver to be tried a few times")
            server.kill()
            receiver.default = Answer(status=200)
            server.start()
            accepted = until(
                lambda: (
                    len(done := [r for r in receiver.requests if r["status"] == 200]) >= 3 and done
                ),
                "the callbacks after the restart",
            )
            certificate = httpx.get(f"{server.url}/v3/discovery", timeout=30).json()[
                "processor_certificate"
            ]
            statuses = []
            for received in accepted:
                signature = received["headers"]["X-OpenDSR-Signature"]
                assert signed_by(certificate, received["body"], signature)
                statuses.append(json.loads(received["body"])["request_status"])
            assert statuses == ["pending", "in_progress", "completed"]
            time.sleep(0.5)
            assert len([r for r in receiver.requests if r["status"] == 200]) == 3
        finally:
            server.stop()


def test_a_callback_url_that_is_not_http_is_refused(plain: Server) -> None:
    body = {
        **erasure({"email": {"value": "x@example.com", "encoding": "raw"}}),
        "status_callback_urls": ["ftp://cb.example.com/status"],
    }
    answer = httpx.post(f"{plain.url}/v3/requests", json=body, auth=SERVER, timeout=30)
    assert answer.status_code == 400
    (error,) = answer.json()["errors"]
    assert error["reason"] == "invalid_callback_url"
    assert "status_callback_urls[0]" in error["message"]
