"""A real Kindred server process on a free port, and the CLI, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

CONFIG = Path(__file__).with_name("kindred-e2e.toml")
KINDRED = [sys.executable, "-m", "kindred.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A `kindred serve` child process; `restart` keeps its data directory."""

    data_dir: Path
    config: Path
    env: dict[str, str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
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
            self.process.wait(15)
            self.process = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*KINDRED, *args, "--config", str(self.config), "--data-dir", str(self.data_dir)],
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


def make_server(tmp: Path, store_url: str | None = None, clock_file: Path | None = None) -> Server:
    """`clock_file`: milliseconds to add to the server's (and its CLI's) clock."""
    env = dict(os.environ)
    env.pop("KINDRED_CONFIG", None)
    env.pop("KINDRED_CLOCK_FILE", None)
    if clock_file is not None:
        env["KINDRED_CLOCK_FILE"] = str(clock_file)
    if store_url:
        env["KINDRED_STORE_URL"] = store_url
    else:
        env.pop("KINDRED_STORE_URL", None)
    return Server(data_dir=tmp / "data", config=CONFIG, env=env)


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
