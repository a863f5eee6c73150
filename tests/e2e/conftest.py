"""A real Kindred server process on a free port, and the CLI, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.pg import connect, pg_url, temporary_database

CONFIG = Path(__file__).with_name("kindred-e2e.toml")
KINDRED = [sys.executable, "-m", "kindred.cli"]
# Debian's Chromium, driven by Playwright (scripts/setup-browser.sh installs it).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--ignore-certificate-errors",
    # Only 127.0.0.1 is reached: none of Chromium's own background traffic.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Tls:
    """A PEM certificate and its key, for `kindred serve --tls-cert --tls-key`."""

    cert: Path
    key: Path

    def context(self) -> ssl.SSLContext:
        """A client context that trusts this (self-signed) certificate, for httpx `verify=`."""
        return ssl.create_default_context(cafile=self.cert)


def self_signed_tls(directory: Path) -> Tls:
    """A fresh self-signed certificate for 127.0.0.1 (and localhost), made with `openssl`."""
    directory.mkdir(parents=True, exist_ok=True)
    tls = Tls(cert=directory / "cert.pem", key=directory / "key.pem")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(tls.key),
            "-out",
            str(tls.cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return tls


@dataclass
class Server:
    """A `kindred serve` child process; `restart` keeps its data directory.

    With `tls` it serves HTTPS with that certificate, and `url` starts with https.
    """

    data_dir: Path
    config: Path
    env: dict[str, str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    tls: Tls | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What httpx's `verify=` needs to trust this server."""
        return self.tls.context() if self.tls else True

    def start(self) -> None:
        self.port = free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / "server.log"
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *KINDRED,
                    "serve",
                    "--config",
                    str(self.config),
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                    *(
                        ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
                        if self.tls
                        else []
                    ),
                ],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kindred serve exited: {log_path.read_text()}")
            try:
                health = httpx.get(f"{self.url}/healthz", timeout=0.5, verify=self.verify)
                if health.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("kindred serve did not become healthy in 20 s")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no draining: what a crash looks like."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            # A worker that just had its database back may take a while to finish what it
            # holds (seen over 15 s on a slow machine); one that never stops still fails.
            self.process.wait(30)
            self.process = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cli_with_config(self.config, *args, check=check)

    def cli_with_config(
        self, config: Path, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`kindred ARGS` on this server's data directory with another config file."""
        result = subprocess.run(
            [*KINDRED, *args, "--config", str(config), "--data-dir", str(self.data_dir)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kindred {' '.join(args)} failed: {result.stderr}")
        return result

    def profile(self, **selector: str) -> dict[str, Any] | None:
        """The stored profile by `mpid=...` or `identity=type=value`, via `kindred profile get`."""
        ((option, value),) = selector.items()
        result = self.cli("profile", "get", f"--{option}", value, check=False)
        if result.returncode != 0:
            if "no profile" in result.stderr:
                return None
            raise AssertionError(result.stderr)
        loaded: dict[str, Any] = json.loads(result.stdout)
        return loaded


def make_server(
    tmp: Path,
    store_url: str | None = None,
    clock_file: Path | None = None,
    *,
    tls: Tls | None = None,
) -> Server:
    """`clock_file`: milliseconds to add to the server's (and its CLI's) clock; `tls`: HTTPS."""
    env = dict(os.environ)
    env.pop("KINDRED_CONFIG", None)
    env.pop("KINDRED_CLOCK_FILE", None)
    if clock_file is not None:
        env["KINDRED_CLOCK_FILE"] = str(clock_file)
    if store_url:
        env["KINDRED_STORE_URL"] = store_url
    else:
        env.pop("KINDRED_STORE_URL", None)
    return Server(data_dir=tmp / "data", config=CONFIG, env=env, tls=tls)


def serving(tmp: Path, config_text: str) -> Iterator[Server]:
    """A server on a config file of its own (written into `tmp`), stopped afterwards."""
    config = tmp / "kindred.toml"
    config.write_text(config_text)
    server = make_server(tmp)
    server.config = config
    server.start()
    try:
        yield server
    finally:
        server.stop()


def forwarding_config(output: str, url: str) -> str:
    """TOML to add to CONFIG: delivery lanes that look for rows often and fault after two
    failures in a row with a short backoff, and a webhook output `output` to `url` (its
    table last, so that more of its keys may follow)."""
    return f"""
[forwarding]
idle_s = 0.05

[forwarding.retry]
base_s = 0.1
max_delay_s = 0.2
max_attempts = 2

[[outputs]]
name = "{output}"
kind = "webhook"
url = "{url}"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("kindred"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    srv = make_server(tmp_path)
    srv.start()
    yield srv
    srv.stop()


Query = Callable[[str, tuple[object, ...]], list[tuple[Any, ...]]]


def clocked_with_query(
    tmp_path: Path, backend: str, config_text: str
) -> Iterator[tuple[Server, Query]]:
    """A server on `config_text` with a test clock at 0 (tmp_path/clock, in milliseconds)
    and a store of `backend` ("sqlite" or "postgres", a fresh database), with a function
    that queries that store directly (SQL with `?` placeholders); stopped afterwards."""
    clock = tmp_path / "clock"
    clock.write_text("0")
    path = tmp_path / "kindred.toml"
    path.write_text(config_text)
    if backend == "sqlite":
        server = make_server(tmp_path, clock_file=clock)
        server.config = path
        server.start()
        db = server.data_dir / "kindred.db"

        def query(sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                return list(conn.execute(sql, params).fetchall())

        try:
            yield server, query
        finally:
            server.stop()
        return
    with temporary_database() as conninfo:
        server = make_server(tmp_path, store_url=pg_url(conninfo), clock_file=clock)
        server.config = path
        server.start()
        admin = connect(conninfo)

        def pg_query(sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
            return list(admin.execute(sql.replace("?", "%s"), params).fetchall())

        try:
            yield server, pg_query
        finally:
            server.stop()
            admin.close()


def until(check: Callable[[], Any], what: str, timeout_s: float = 20) -> Any:
    """`check()`'s first truthy answer, asked every 0.1 s; AssertionError naming `what`
    after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


E2E_SERVER_INPUT = ("server-key", "server-secret")  # kindred-e2e.toml's server input
E2E_ADMIN = {"Authorization": "Bearer e2e-admin-token"}  # kindred-e2e.toml's admin token


def admin_json(server: Server, method: str, path: str, body: object = None) -> Any:
    """An admin API call (`/admin/v1` + path) that must succeed (200 or 201): its JSON."""
    answer = httpx.request(
        method, f"{server.url}/admin/v1{path}", json=body, headers=E2E_ADMIN, timeout=30
    )
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def send_batch(server: Server, body: dict[str, Any]) -> None:
    """A batch through the e2e config's server input, which must be accepted (202)."""
    answer = httpx.post(f"{server.url}/v2/events", json=body, auth=E2E_SERVER_INPUT, timeout=30)
    assert answer.status_code == 202, answer.text
