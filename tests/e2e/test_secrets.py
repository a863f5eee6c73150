"""Secrets stay secret (SEC-3), against real server processes: nothing secret in the
server's output, output secrets write-only over the admin API and encrypted in the store,
data files private, /metrics behind its token, and `kindred keys rotate` end to end."""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.conftest import CONFIG, KINDRED, Server, forwarding_config, free_port, make_server
from tests.pg import pg_url, temporary_database
from tests.receiver import Answer, Receiver, receiving

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": "Bearer e2e-admin-token"}
SERVER = ("server-key", "server-secret")
AUDIENCE = "https://api.mparticle.com"
# Secrets that must never be seen where they do not belong.
PG_PASSWORD = "Pg-pa55-9f3c1"
URL_PASSWORD = "Url-pa55-77ab"
URL_TOKEN = "Url-t0ken-51de"
HEADER_TOKEN = "Hdr-t0ken-c0de"
METRICS_TOKEN = "metrics-t0ken-e2e"


def _with_credentials(url: str) -> str:
    """The receiver's URL with a user, a password and a query token."""
    parts = urlsplit(url)
    return f"http://hooks:{URL_PASSWORD}@{parts.netloc}{parts.path}?token={URL_TOKEN}&v=1"


def _batch(customer_id: str) -> dict[str, Any]:
    return {
        "environment": "production",
        "user_identities": {"customer_id": customer_id},
        "events": [
            {
                "event_type": "custom_event",
                "data": {"event_name": "e", "custom_event_type": "other"},
            }
        ],
    }


def _post(base: str, body: dict[str, Any]) -> None:
    response = httpx.post(f"{base}/v2/events", content=json.dumps(body), auth=SERVER, timeout=10)
    assert response.status_code == 202, response.text


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("kindred serve exited")
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("kindred serve did not become healthy in 20 s")


def test_the_servers_whole_output_holds_no_password_or_token(tmp_path: Path) -> None:
    """A PostgreSQL store URL with a password, a webhook whose URL has credentials and a
    query token and whose auth header is a bearer token; deliveries (one retried) happen
    with every library logging at debug level: stdout and stderr hold none of them."""
    with temporary_database() as conninfo, receiving() as receiver:
        store_url = pg_url(conninfo).replace(
            "postgresql://postgres@", f"postgresql://postgres:{PG_PASSWORD}@"
        )
        receiver.script.append(Answer(status=503))
        config = tmp_path / "kindred.toml"
        config.write_text(
            CONFIG.read_text().replace('log_level = "warning"', 'log_level = "debug"')
            + forwarding_config("hook", _with_credentials(receiver.url))
            + f'auth_header = "X-Api-Token: {HEADER_TOKEN}"\n'
            + '\n[[event_connections]]\nname = "to-hook"\ninput = "server"\noutput = "hook"\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("KINDRED_")}
        env["KINDRED_STORE_URL"] = store_url
        port = free_port()
        output = tmp_path / "serve.out"
        with output.open("wb") as out:
            process = subprocess.Popen(
                [
                    *KINDRED,
                    "serve",
                    *("--config", str(config), "--data-dir", str(tmp_path / "data")),
                    *("--port", str(port)),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(base, process)
            for n in range(3):
                _post(base, _batch(f"secret-log-{n}"))
            receiver.wait_for(3, timeout_s=20)
            listed = httpx.get(f"{base}/admin/v1/outputs", headers=ADMIN, timeout=5)
            assert listed.status_code == 200
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(15)
        # The deliveries carried the secrets to the receiver...
        assert receiver.requests[0]["status"] == 503
        last = receiver.requests[-1]
        assert last["headers"]["X-Api-Token"] == HEADER_TOKEN
        assert f"token={URL_TOKEN}" in last["path"]
        assert last["headers"]["Authorization"] == _basic()
        # ... and the server's output names none of them.
        log = output.read_text()
        assert "Kindred listening on" in log
        assert "store:    postgresql://postgres:***@" in log
        assert len(log.splitlines()) > 10  # debug lines were written
        for secret in (PG_PASSWORD, URL_PASSWORD, URL_TOKEN, HEADER_TOKEN, "e2e-admin-token"):
            assert secret not in log, secret
        assert secret_free(listed.text)


def _basic() -> str:
    """The Authorization header a URL's user and password make."""
    return "Basic " + base64.b64encode(f"hooks:{URL_PASSWORD}".encode()).decode()


def secret_free(text: str) -> bool:
    return not any(s in text for s in (URL_PASSWORD, URL_TOKEN, HEADER_TOKEN))


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with receiving() as found:
        yield found


def _secure_server(tmp: Path) -> Server:
    """The e2e config with /metrics behind a token from the environment."""
    server = make_server(tmp)
    config = tmp / "kindred.toml"
    config.write_text(
        CONFIG.read_text()
        + '\n[metrics]\ntoken_env = "E2E_METRICS_TOKEN"\n\n[forwarding]\nidle_s = 0.05\n'
    )
    server.config = config
    server.env["E2E_METRICS_TOKEN"] = METRICS_TOKEN
    return server


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = _secure_server(tmp_path_factory.mktemp("secure"))
    server.start()
    yield server
    server.stop()


def _save_hook(server: Server, receiver: Receiver, name: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/admin/v1/outputs",
        headers=ADMIN,
        json={
            "name": name,
            "kind": "webhook",
            "url": _with_credentials(receiver.url),
            "auth_header": f"X-Api-Token: {HEADER_TOKEN}",
        },
        timeout=5,
    )


def _connect(server: Server, name: str, output: str) -> None:
    made = httpx.post(
        f"{server.url}/admin/v1/connections/events",
        headers=ADMIN,
        json={"name": name, "input": "server", "output": output},
        timeout=5,
    )
    assert made.status_code == 201, made.text


def test_output_secrets_are_answered_masked_and_kept_on_a_round_trip(
    secure: Server, receiver: Receiver
) -> None:
    made = _save_hook(secure, receiver, "masked-hook")
    assert made.status_code == 201, made.text
    port = urlsplit(receiver.url).port
    masked_url = f"http://hooks:***@127.0.0.1:{port}/hook?token=***&v=1"
    assert made.json()["auth_header"] == "********"
    assert made.json()["url"] == masked_url
    base = f"{secure.url}/admin/v1/outputs"
    (shown,) = [
        o for o in httpx.get(base, headers=ADMIN, timeout=5).json() if o["name"] == "masked-hook"
    ]
    assert shown["auth_header"] == "********"
    assert shown["url"] == masked_url
    # PUT what GET answered, one setting changed: the secrets stay as stored.
    put = httpx.put(
        f"{base}/masked-hook", headers=ADMIN, json={**shown, "batch_size": 7}, timeout=5
    )
    assert put.status_code == 200, put.text
    assert put.json()["batch_size"] == 7
    patched = httpx.patch(
        f"{base}/masked-hook",
        headers=ADMIN,
        json={"timeout_s": 5, "auth_header": "********"},
        timeout=5,
    )
    assert patched.status_code == 200, patched.text
    assert secret_free(patched.text)
    wrong = httpx.put(f"{base}/other-name", headers=ADMIN, json=shown, timeout=5)
    assert wrong.status_code == 400
    # PUT makes an output of a new name (a mask then has no stored secret to keep); PATCH
    # changes only an output that exists.
    copied = httpx.put(
        f"{base}/put-made", headers=ADMIN, json={**shown, "name": "put-made"}, timeout=5
    )
    assert copied.status_code == 400
    assert "no stored secret for the mask to keep" in copied.text
    plain = {"name": "put-made", "kind": "webhook", "url": f"http://127.0.0.1:{port}/plain"}
    made_by_put = httpx.put(f"{base}/put-made", headers=ADMIN, json=plain, timeout=5)
    assert made_by_put.status_code == 200, made_by_put.text
    listed = httpx.get(base, headers=ADMIN, timeout=5).json()
    assert [o["url"] for o in listed if o["name"] == "put-made"] == [plain["url"]]
    unknown = httpx.patch(f"{base}/never-made", headers=ADMIN, json={"timeout_s": 5}, timeout=5)
    assert unknown.status_code == 404
    # The secrets still deliver.
    _connect(secure, "to-masked-hook", "masked-hook")
    time.sleep(2.5)  # the server looks for new connections every 2 s
    before = len(receiver.requests)
    _post(secure.url, _batch("masked-1"))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(receiver.requests) == before:
        time.sleep(0.05)
    sent = receiver.requests[-1]
    assert sent["headers"]["X-Api-Token"] == HEADER_TOKEN
    assert sent["path"] == f"/hook?token={URL_TOKEN}&v=1"
    assert sent["headers"]["Authorization"] == _basic()
    # The stored row holds ciphertext, and no file of the data directory holds a secret.
    with sqlite3.connect(secure.data_dir / "kindred.db") as db:
        (doc,) = db.execute(
            "SELECT doc FROM forwarding_definitions WHERE kind = 'output' AND name = 'masked-hook'"
        ).fetchone()
    stored = json.loads(doc)
    assert stored["auth_header"].startswith("enc:")
    assert stored["url"].startswith("enc:")
    for path in secure.data_dir.iterdir():
        if path.is_file():
            data = path.read_bytes()
            for secret in (URL_PASSWORD, URL_TOKEN, HEADER_TOKEN):
                assert secret.encode() not in data, (path.name, secret)


def test_data_files_and_key_files_are_private(secure: Server, receiver: Receiver) -> None:
    assert _save_hook(secure, receiver, "mode-hook").status_code == 201
    data = secure.data_dir
    assert data.stat().st_mode & 0o777 == 0o700
    for name in ("kindred.db", "kindred.db-wal", "kindred.db-shm", "secrets.key"):
        assert (data / name).stat().st_mode & 0o777 == 0o600, name


def test_metrics_answer_only_the_bearer_of_the_metrics_token(secure: Server) -> None:
    url = f"{secure.url}/metrics"
    assert httpx.get(url, timeout=5).status_code == 401
    wrong = httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    right = httpx.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=5)
    assert right.status_code == 200
    assert "kindred_writer_queue" in right.text


def _token(server: Server) -> str:
    body = {
        "client_id": "e2e-client",
        "client_secret": "e2e-secret",
        "audience": AUDIENCE,
        "grant_type": "client_credentials",
    }
    response = httpx.post(f"{server.url}/oauth/token", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _profile_status(server: Server, token: str) -> int:
    return httpx.get(
        f"{server.url}/userprofile/v1/1/1/1/42",
        headers={"Authorization": f"Bearer {token}"},
        params={"fields": "user_attributes"},
        timeout=10,
    ).status_code


def test_keys_rotate_refuses_old_tokens_and_output_secrets_still_deliver(
    tmp_path: Path, receiver: Receiver
) -> None:
    server = _secure_server(tmp_path)
    server.start()
    try:
        assert _save_hook(server, receiver, "rotating-hook").status_code == 201
        _connect(server, "to-rotating-hook", "rotating-hook")
        old = _token(server)
        assert _profile_status(server, old) == 404  # the token is good; no such profile
        with sqlite3.connect(server.data_dir / "kindred.db") as db:
            query = "SELECT doc FROM forwarding_definitions WHERE name = 'rotating-hook'"
            (sealed_before,) = db.execute(query).fetchone()
        key_before = (server.data_dir / "secrets.key").read_text()
        server.stop()
        rotated = server.cli("keys", "rotate")
        assert "secrets: new key" in rotated.stdout
        assert "token-signing: new key in the store" in rotated.stdout
        assert "ui-session: new key in the store" in rotated.stdout
        assert (server.data_dir / "secrets.key").read_text() != key_before
        assert (server.data_dir / "secrets.key").stat().st_mode & 0o777 == 0o600
        with sqlite3.connect(server.data_dir / "kindred.db") as db:
            (sealed_after,) = db.execute(query).fetchone()
        assert sealed_after != sealed_before
        assert HEADER_TOKEN.encode() not in bytes(sealed_after)
        server.start()
        assert _profile_status(server, old) == 401
        assert _profile_status(server, _token(server)) == 404
        before = len(receiver.requests)
        _post(server.url, _batch("rotated-1"))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(receiver.requests) == before:
            time.sleep(0.05)
        assert receiver.requests[-1]["headers"]["X-Api-Token"] == HEADER_TOKEN
        listed = json.loads(server.cli("keys", "list").stdout)
        assert {k["name"]: k["from"] for k in listed}["token-signing"] == "the store"
        only = server.cli("keys", "rotate", "--name", "ui-session")
        assert only.stdout.strip() == "ui-session: new key in the store"
    finally:
        server.stop()


def test_a_signing_key_from_the_environment_is_not_rotated_by_the_cli(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    key = subprocess.run([*KINDRED, "keys", "generate"], capture_output=True, text=True, check=True)
    server.env["KINDRED_TOKEN_SIGNING_KEY"] = key.stdout.strip()
    server.cli("migrate")
    refused = server.cli("keys", "rotate", "--name", "token-signing", check=False)
    assert refused.returncode == 1
    assert "KINDRED_TOKEN_SIGNING_KEY" in refused.stderr
