"""What the scale-out end-to-end tests and `bench/scale.py` start and watch: a three-node
JetStream cluster (scripts/jetstream-cluster.sh), a TCP proxy in front of PostgreSQL that
can be cut (the database gone, as seen from Kindred, without stopping a server other tests
share), `kindred serve` processes in roles api and worker, and a sender whose batches
carry (user, n) so that what was applied can be checked against what was answered 202."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats

from tests.e2e.conftest import CONFIG, E2E_SERVER_INPUT, Server, free_port, make_server

__all__ = [
    "Cluster",
    "PgProxy",
    "Sender",
    "check_applied",
    "role_server",
    "stream_section",
]

SCRIPT = Path(__file__).parents[2] / "scripts" / "jetstream-cluster.sh"


class Cluster:
    """Three nats-server nodes on loopback; `kill(n)` is kill -9."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.base = _free_base()

    @property
    def url(self) -> str:
        return ",".join(f"nats://127.0.0.1:{self.base + n}" for n in range(3))

    def start(self) -> None:
        subprocess.run([str(SCRIPT), "start", str(self.dir), str(self.base)], check=True)

    def stop(self) -> None:
        subprocess.run([str(SCRIPT), "stop", str(self.dir)], check=False)

    def kill(self, node: int) -> None:
        pid = int((self.dir / f"n{node}.pid").read_text())
        subprocess.run(["kill", "-9", str(pid)], check=False)
        time.sleep(0.1)

    def restart(self, node: int) -> None:
        subprocess.run([str(SCRIPT), "node", str(self.dir), str(node), str(self.base)], check=True)

    def leader(self, stream: str) -> int:
        """The node leading the stream's replicas now."""

        async def ask() -> str:
            client = await nats.connect(servers=self.url.split(","), connect_timeout=2)
            try:
                info = await client.jetstream(timeout=5).stream_info(stream)
                assert info.cluster is not None
                return str(info.cluster.leader)
            finally:
                await client.close()

        return int(asyncio.run(ask()).removeprefix("n"))


def _free_base() -> int:
    """Three free client ports in a row, and their cluster ports 100 above."""
    while True:
        base = random.randrange(20_000, 40_000)
        if all(_free(p) for n in range(3) for p in (base + n, base + 100 + n)):
            return base


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PgProxy:
    """Forwards a local port to PostgreSQL; `cut()` drops every connection and refuses new
    ones (what a stopped database looks like to Kindred) until `restore()`."""

    def __init__(self, target_port: int = 5432) -> None:
        self.port = free_port()
        self._target = target_port
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            if listener is not None:
                listener.close()
            for sock in self._open:
                _close(sock)
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self._target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def stream_section(nats_url: str, **overrides: object) -> tuple[str, str]:
    """A [stream] section of a stream of its own; (its text, the stream's name)."""
    tag = uuid.uuid4().hex[:10]
    name = f"KINDRED_E2E_{tag}"
    keys: dict[str, object] = {
        "url": nats_url,
        "name": name,
        "subject_prefix": f"kindred.e2e.{tag}",
        "partitions": 8,
        "lease_s": 2.0,
    }
    keys.update(overrides)
    lines = [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in keys.items()]
    return "\n[stream]\n" + "\n".join(lines).replace("'", '"') + "\n", name


def role_server(tmp: Path, name: str, role: str, store_url: str, stream: str) -> Server:
    """A `kindred serve` process of the e2e config plus `stream`, in `role`."""
    directory = tmp / name
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "kindred.toml"
    text = CONFIG.read_text()
    # [stream] must come before the config's arrays of tables: put it right after [server].
    head, sep, rest = text.partition("[org]")
    config.write_text(head + stream + "\n" + sep + rest)
    server = make_server(directory, store_url=store_url)
    server.config = config
    server.env["KINDRED_ROLE"] = role
    return server


@dataclass
class Sender:
    """Batches of `users` users, each user's sent one after another (so their order is the
    order they must be applied in) by a thread per user; every answer recorded."""

    urls: Callable[[], list[str]]
    users: int = 16
    # (user, n) -> the status it was answered (0: no answer: the API died meanwhile)
    answers: dict[tuple[str, int], int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for u in range(self.users):
            thread = threading.Thread(target=self._user, args=(f"user-{u}",), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def snapshot(self) -> dict[tuple[str, int], int]:
        """The answers so far (a copy: the senders go on)."""
        with self._lock:
            return dict(self.answers)

    def count(self, status: int) -> int:
        with self._lock:
            return sum(1 for s in self.answers.values() if s == status)

    def _user(self, user: str) -> None:
        n = 0
        with httpx.Client(auth=E2E_SERVER_INPUT, timeout=15) as client:
            while not self._stop.is_set():
                urls = self.urls()
                url = urls[hash(user) % len(urls)]
                status = _send(client, url, user, n)
                with self._lock:
                    self.answers[(user, n)] = status
                n += 1
                if status != 202:
                    time.sleep(0.2)


def _send(client: httpx.Client, url: str, user: str, n: int) -> int:
    body: dict[str, Any] = {
        "user_identities": {"customer_id": user},
        "user_attributes": {"n": n},
        "events": [
            {
                "event_type": "custom_event",
                "data": {"event_name": "tick", "custom_attributes": {"n": n}},
            }
        ],
    }
    try:
        return client.post(f"{url}/v2/events", json=body).status_code
    except httpx.TransportError:
        return 0


def check_applied(
    answers: dict[tuple[str, int], int], applied: list[tuple[str, int]]
) -> dict[str, int]:
    """Every batch answered 202 applied exactly once; one not answered (its API died) or
    answered 504 (the log did not confirm it in time: it may be stored) at most once; one
    answered otherwise never; each user's in the order sent. Raises AssertionError naming
    the first breach; the counts."""
    seen: dict[tuple[str, int], int] = {}
    for pair in applied:
        seen[pair] = seen.get(pair, 0) + 1
    twice = [p for p, c in seen.items() if c > 1]
    assert not twice, f"applied more than once: {twice[:5]}"
    lost = [p for p, s in answers.items() if s == 202 and p not in seen]
    assert not lost, f"answered 202, never applied: {lost[:5]}"
    refused_applied = [p for p in seen if answers.get(p) not in (202, 0, 504)]
    assert not refused_applied, f"refused, applied all the same: {refused_applied[:5]}"
    last: dict[str, int] = {}
    for user, n in applied:
        assert n > last.get(user, -1), f"{user}: batch {n} applied after {last[user]}"
        last[user] = n
    return {
        "answered_202": sum(1 for s in answers.values() if s == 202),
        "unanswered": sum(1 for s in answers.values() if s == 0),
        "unanswered_applied": sum(1 for p, s in answers.items() if s == 0 and p in seen),
        "unconfirmed": sum(1 for s in answers.values() if s == 504),
        "unconfirmed_applied": sum(1 for p, s in answers.items() if s == 504 and p in seen),
        "applied": len(applied),
    }
