"""Roles api and worker over the batch log (OPS-2 scale-out), as real processes on a
three-node JetStream cluster and PostgreSQL: every batch answered 202 is applied exactly
once and each user's in order, whatever is killed -9 meanwhile (the stream's leader, a
worker, an API process); with the database cut, API processes go on answering 202 until
the backlog limit, then 503 with Retry-After, and the workers catch up once it is back.

Few trials here, to keep the suite short; `bench/scale.py --chaos N` runs many more
(bench/RESULTS.md)."""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.e2e.conftest import KINDRED, Server, until
from tests.e2e.scaleout import (
    Cluster,
    PgProxy,
    Sender,
    check_applied,
    role_server,
    stream_section,
)
from tests.pg import connect, pg_url, temporary_database

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

NATS_URL = "nats://127.0.0.1:4222"


def _applied(conninfo: str) -> list[tuple[str, int]]:
    with connect(conninfo) as conn:
        rows = conn.execute("SELECT body FROM event_log ORDER BY id").fetchall()
    found = []
    for (body,) in rows:
        doc = msgspec.json.decode(bytes(body))
        found.append((doc["user_identities"]["customer_id"], doc["user_attributes"]["n"]))
    return found


def _all_applied(conninfo: str, sender: Sender) -> list[tuple[str, int]]:
    """Waits until every batch answered 202 is in the event log; the log then."""
    wanted = {p for p, s in sender.answers.items() if s == 202}

    def done() -> list[tuple[str, int]] | None:
        applied = _applied(conninfo)
        return applied if wanted <= set(applied) else None

    try:
        until(done, "every batch answered 202 applied", timeout_s=60)
    except AssertionError:
        missing = sorted(wanted - set(_applied(conninfo)))
        raise AssertionError(f"answered 202, not applied in 60 s: {missing[:10]}") from None
    time.sleep(1.0)  # anything still in flight (an unanswered batch) lands too
    return _applied(conninfo)


def test_roles_api_and_worker_refuse_the_embedded_store(tmp_path: Path) -> None:
    result = subprocess.run(
        [*KINDRED, "serve", "--role", "worker", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "role worker needs PostgreSQL" in result.stderr


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path / "jetstream")
    nodes.start()
    yield nodes
    nodes.stop()


def test_every_batch_answered_202_is_applied_once_in_order_through_kill_9s(
    tmp_path: Path, cluster: Cluster
) -> None:
    """The stream's leader, a worker and an API process each killed -9 at a random moment
    of the ingest, and started again."""
    stream, name = stream_section(cluster.url, replicas=3)
    rng = random.Random()
    with temporary_database() as conninfo:
        url = pg_url(conninfo)
        apis = [role_server(tmp_path, f"api{i}", "api", url, stream) for i in range(2)]
        workers = [role_server(tmp_path, f"worker{i}", "worker", url, stream) for i in range(2)]
        for server in [*apis, *workers]:
            server.start()
        sender = Sender(lambda: [a.url for a in apis], users=12)
        try:
            sender.start()
            events = [("leader", 0), ("worker", 0), ("api", 0)]
            for what, _ in rng.sample(events, len(events)):
                time.sleep(rng.uniform(0.5, 2.0))
                _kill_and_restart(what, cluster, stream=name, workers=workers, apis=apis, rng=rng)
            time.sleep(1.5)
            sender.stop()
            counts = check_applied(sender.answers, _all_applied(conninfo, sender))
            assert counts["answered_202"] > 200, counts
        finally:
            sender.stop()
            for server in [*apis, *workers]:
                server.stop()


def _kill_and_restart(
    what: str,
    cluster: Cluster,
    *,
    stream: str,
    workers: list[Server],
    apis: list[Server],
    rng: random.Random,
) -> None:
    if what == "leader":
        node = cluster.leader(stream)
        cluster.kill(node)
        time.sleep(rng.uniform(0.5, 2.0))
        cluster.restart(node)
        return
    server = rng.choice(workers if what == "worker" else apis)
    server.kill()
    time.sleep(rng.uniform(0.2, 1.0))
    server.start()


def _metric(server: Server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_with_the_database_cut_the_api_accepts_up_to_the_backlog_then_503(
    tmp_path: Path,
) -> None:
    proxy = PgProxy()
    stream, _ = stream_section(NATS_URL, max_backlog_bytes=40_000)
    with temporary_database() as conninfo:
        url = pg_url(conninfo).replace(":5432/", f":{proxy.port}/")
        api = role_server(tmp_path, "api", "api", url, stream)
        worker = role_server(tmp_path, "worker", "worker", url, stream)
        api.start()
        worker.start()
        sender = Sender(lambda: [api.url], users=8)
        try:
            sender.start()
            until(lambda: sender.count(202) > 50, "batches accepted before the cut")
            proxy.cut()
            cut_at = len(sender.snapshot())
            until(lambda: sender.count(503) > 20, "503 once the backlog is full", timeout_s=60)
            during = sender.snapshot()
            assert _metric(api, "kindred_log_backlog_bytes") > 0
            proxy.restore()
            time.sleep(2.0)
            sender.stop()
            statuses = set(sender.answers.values())
            # Never any other 5xx. (The senders may outrun the input's rate limit: a 429 is
            # the answer then, and such a batch is never applied, as check_applied checks.)
            assert statuses <= {202, 429, 503}, statuses
            assert len(during) - cut_at > 20  # accepted while the database was away
            counts = check_applied(sender.answers, _all_applied(conninfo, sender))
            assert counts["unanswered"] == 0
            # Applied records are trimmed: the backlog and every partition's lag go to 0.
            status = until(
                lambda: (s := _stream_status(worker))["backlog_batches"] == 0 and s,
                "the backlog trimmed",
            )
            assert {p["lag"] for p in status["partitions"]} == {0}
            assert {p["worker"] is not None for p in status["partitions"]} == {True}
        finally:
            sender.stop()
            api.stop()
            worker.stop()
            proxy.cut()


def _stream_status(server: Server) -> dict[str, Any]:
    result = server.cli("stream", "status", "--json")
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded
