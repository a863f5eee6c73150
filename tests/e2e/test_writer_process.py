"""`kindred serve --writer-process` on the embedded store: the HTTP process decodes each
batch and a writer process of its own applies it. A batch builds the same profile either
way (sent by the real mParticle SDK); a bad one is refused naming its field; the writer
process killed -9 is started again, and every batch answered 202 meanwhile is applied
once, each user's in order; the server killed -9 takes its writer process with it."""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.e2e.conftest import E2E_SERVER_INPUT, Server, make_server, until
from tests.e2e.scaleout import Sender, check_applied
from tests.e2e.test_sdk import _api, _batch

pytestmark = pytest.mark.e2e


def _writer_server(tmp: Path) -> Server:
    server = make_server(tmp)
    server.env["KINDRED_WRITER_PROCESS"] = "1"
    return server


@pytest.fixture
def writer_server(tmp_path: Path) -> Iterator[Server]:
    server = _writer_server(tmp_path / "writer")
    server.start()
    yield server
    server.stop()


def _writer_pid(server: Server) -> int:
    return int((server.data_dir / "writer.pid").read_text())


def _alive(pid: int) -> bool:
    """Running (an ended process its new parent has not reaped yet is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _without_times(value: Any) -> Any:
    """A profile with what differs between two stores taken out: MPIDs and times."""
    if isinstance(value, dict):
        return {
            k: _without_times(v)
            for k, v in value.items()
            if not k.endswith("_ms") and k not in {"mpid", "seen_ms"}
        }
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def test_a_batch_builds_the_same_profile_as_in_one_process(
    tmp_path: Path, writer_server: Server
) -> None:
    single = make_server(tmp_path / "single")
    single.start()
    try:
        for server in (single, writer_server):
            _api(server).upload_events(_batch("wp-1", "wp1@example.com"))  # type: ignore[attr-defined]
        one = single.profile(identity="customer_id=wp-1")
        split = writer_server.profile(identity="customer_id=wp-1")
    finally:
        single.stop()
    assert one is not None
    assert split is not None
    assert split["user_identities"]["email"]["value"] == "wp1@example.com"
    assert _without_times(split) == _without_times(one)
    metrics = httpx.get(f"{writer_server.url}/metrics", timeout=10).text
    assert 'kindred_batches_total{input="server",status="applied"} 1.0' in metrics


def test_a_bad_batch_is_refused_naming_its_field(writer_server: Server) -> None:
    answer = httpx.post(
        f"{writer_server.url}/v2/events",
        auth=E2E_SERVER_INPUT,
        json={"events": 5},
        timeout=10,
    )
    assert answer.status_code == 400
    assert "`events`" in answer.json()["errors"][0]["message"]


def _applied(server: Server) -> list[tuple[str, int]]:
    with sqlite3.connect(server.data_dir / "kindred.db") as conn:
        rows = conn.execute("SELECT body FROM event_log ORDER BY id").fetchall()
    found = []
    for (body,) in rows:
        doc = msgspec.json.decode(bytes(body))
        found.append((doc["user_identities"]["customer_id"], doc["user_attributes"]["n"]))
    return found


def test_every_batch_answered_202_is_applied_once_in_order_through_writer_kill_9s(
    writer_server: Server,
) -> None:
    rng = random.Random()
    sender = Sender(lambda: [writer_server.url], users=8)
    sender.start()
    try:
        for _ in range(2):
            time.sleep(rng.uniform(0.5, 1.5))
            before = _writer_pid(writer_server)
            os.kill(before, 9)
            until(
                lambda before=before: _writer_pid(writer_server) != before,  # type: ignore[misc]
                "the writer process started again",
            )
        answered_before = sender.count(202)
        until(lambda: sender.count(202) > answered_before + 20, "202s after the last kill")
    finally:
        sender.stop()
    counts = check_applied(sender.answers, _applied(writer_server))
    assert counts["answered_202"] > 50, counts
    assert sender.count(503) + sender.count(504) > 0, "no batch met the writer away"


def test_the_server_killed_takes_its_writer_process_with_it(writer_server: Server) -> None:
    writer = _writer_pid(writer_server)
    writer_server.kill()
    until(lambda: not _alive(writer), "the writer process gone with its server", timeout_s=10)
    writer_server.start()
    assert _writer_pid(writer_server) != writer
    answer = httpx.post(
        f"{writer_server.url}/v2/events",
        auth=E2E_SERVER_INPUT,
        json={"user_identities": {"customer_id": "after"}, "events": []},
        timeout=10,
    )
    assert answer.status_code == 202
    assert writer_server.profile(identity="customer_id=after") is not None
