"""The batch log of roles api and worker, against the real JetStream on 127.0.0.1:4222 and
a throwaway PostgreSQL database: records read in order from a position, trimmed once
applied; a worker applies what the API appended, and the same records read again change
nothing; partitions are shared between workers and a dead worker's taken over."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import nats
import pytest

from kindred.bootstrap import Container, build
from kindred.config import Settings, load_settings
from kindred.ports.batch_log import BatchLog, LogRecord
from kindred.services.ingest.positioned import OUT_OF_ORDER, REDELIVERED, Positioned
from kindred.services.partitions.appender import BacklogLimits, LogAppender
from kindred.services.partitions.worker import command_of
from kindred.services.writes.commands import Accepted
from kindred.storage.postgres import PostgresStore
from kindred.stream import JetStreamLog, LogOptions
from kindred.wire.observe import observe
from tests.pg import pg_url, temporary_database

pytestmark = [pytest.mark.postgres]

NATS_URL = "nats://127.0.0.1:4222"
CONFIG = Path(__file__).parents[1] / "e2e" / "kindred-e2e.toml"


@pytest.fixture
def stream_names() -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:10]
    names = (f"KINDRED_TEST_LOG_{tag}", f"kindred.testlog.{tag}")
    yield names
    asyncio.run(_delete(names[0]))


async def _delete(stream: str) -> None:
    client = await nats.connect(NATS_URL)
    try:
        await client.jetstream().delete_stream(stream)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await client.close()


def _log(names: tuple[str, str]) -> JetStreamLog:
    return JetStreamLog(
        LogOptions(servers=(NATS_URL,), stream=names[0], subject_prefix=names[1], partitions=4)
    )


def test_records_read_in_order_from_a_position_and_trimmed(
    stream_names: tuple[str, str],
) -> None:
    async def scenario() -> None:
        batch_log = _log(stream_names)
        seqs = [await batch_log.append(i % 2, b"r%d" % i, f"m{i}") for i in range(6)]
        # The same message id again (an API retrying): stored once.
        assert await batch_log.append(0, b"r0", "m0") == seqs[0]
        first = await batch_log.read(0, 0, 10, 0.5)
        assert [r.data for r in first] == [b"r0", b"r2", b"r4"]
        assert [r.seq for r in await batch_log.read(0, first[0].seq, 10, 0.5)] == seqs[2::2]
        assert await batch_log.read(0, seqs[4], 10, 0.2) == []
        held = await batch_log.backlog()
        assert (held.messages, held.per_partition) == (6, {0: 3, 1: 3})
        assert held.oldest_ms is not None
        assert abs(held.oldest_ms - time.time() * 1000) < 60_000
        # Partition 0 applied through its second record, 1 through its first: the log
        # keeps everything from the first record one of them still needs.
        await batch_log.trim({0: seqs[2], 1: seqs[1]})
        assert (await batch_log.backlog()).per_partition == {0: 1, 1: 2}
        assert [r.data for r in await batch_log.read(0, 0, 10, 0.5)] == [b"r4"]
        assert [r.data for r in await batch_log.read(1, 0, 10, 0.5)] == [b"r3", b"r5"]
        await batch_log.trim({0: seqs[4], 1: seqs[5]})
        assert (await batch_log.backlog()).messages == 0
        await batch_log.close()

    asyncio.run(scenario())


def test_a_partition_is_read_by_one_reader_at_a_time(stream_names: tuple[str, str]) -> None:
    """Two reads sharing a partition's consumer would each get part of what it delivers."""

    async def scenario() -> None:
        batch_log = _log(stream_names)
        await batch_log.append(0, b"r0", "m0")
        first = asyncio.create_task(batch_log.read(0, 10**9, 10, 0.5))
        await asyncio.sleep(0.1)
        with pytest.raises(RuntimeError, match="partition 0 is already being read"):
            await batch_log.read(0, 10**9, 10, 0.5)
        assert await first == []
        assert [r.data for r in await batch_log.read(0, 0, 10, 0.5)] == [b"r0"]
        await batch_log.close()

    asyncio.run(scenario())


def _settings(store_url: str, names: tuple[str, str], role: str) -> Settings:
    settings = load_settings(CONFIG, env={"KINDRED_STORE_URL": store_url, "KINDRED_ROLE": role})
    stream = msgspec.structs.replace(
        settings.stream, name=names[0], subject_prefix=names[1], partitions=4, lease_s=1.5
    )
    return msgspec.structs.replace(settings, stream=stream)


def _body(user: str, n: int) -> bytes:
    return msgspec.json.encode(
        {"user_identities": {"customer_id": user}, "user_attributes": {"n": n}}
    )


def _appended(container: Container, batch_log: BatchLog, count: int) -> None:
    """`count` batches of 4 users through the API role's appender."""
    source = container.tenancy.input_named("server")
    assert source is not None
    limits = BacklogLimits(max_bytes=10**9, max_age_s=3600)
    appender = LogAppender(batch_log, limits, container.clock, container.metrics)

    async def send() -> None:
        for n in range(count):
            body = _body(f"u{n % 4}", n)
            obs = observe(body, source, container.clock.now_ms())
            await appender.submit([Accepted(source, obs, body)])
        await appender.close()

    asyncio.run(send())


def _applied(store: PostgresStore) -> list[tuple[str, int]]:
    """(customer_id, n) of every logged batch, in the order applied."""
    found = []
    for entry in store.read_log(0, 10_000):
        doc = msgspec.json.decode(entry.body)
        found.append((doc["user_identities"]["customer_id"], doc["user_attributes"]["n"]))
    return found


def test_a_worker_applies_the_log_once_in_order_and_records_read_again_change_nothing(
    tmp_path: Path, stream_names: tuple[str, str]
) -> None:
    with temporary_database() as conninfo:
        settings = msgspec.structs.replace(
            _settings(pg_url(conninfo), stream_names, "worker"), data_dir=str(tmp_path)
        )
        worker = build(settings)
        worker.migrate()
        store = worker.store
        assert isinstance(store, PostgresStore)
        _appended(worker, _log(stream_names), 40)
        records = asyncio.run(_all_records(stream_names))
        worker.start()
        try:
            deadline = time.monotonic() + 20
            while len(_applied(store)) < 40 and time.monotonic() < deadline:
                time.sleep(0.1)
            applied = _applied(store)
            assert sorted(applied) == sorted((f"u{n % 4}", n) for n in range(40))
            for user in ("u0", "u1", "u2", "u3"):
                mine = [n for u, n in applied if u == user]
                assert mine == sorted(mine)  # one user's batches in the order appended
            # Every record read again (a crash before the log learnt anything): skipped.
            inputs = worker.tenancy.input_named
            before: dict[int, int] = {}
            again = []
            for p, r in records:
                again.append(Positioned(p, r.seq, before.get(p, 0), command_of(r.data, inputs)))
                before[p] = r.seq
            outcomes = worker.commands.apply(again)
            assert {o.status for o in outcomes} == {REDELIVERED}
            # A record whose predecessor is not applied (a later group run first): nothing.
            p, last = records[-1]
            ahead = Positioned(p, last.seq + 10, last.seq + 5, command_of(last.data, inputs))
            assert [o.status for o in worker.commands.apply([ahead])] == [OUT_OF_ORDER]
            assert len(_applied(store)) == 40
        finally:
            worker.close()


async def _all_records(names: tuple[str, str]) -> list[tuple[int, LogRecord]]:
    batch_log = _log(names)
    found: list[tuple[int, LogRecord]] = []
    for partition in range(4):
        found += [(partition, r) for r in await batch_log.read(partition, 0, 1000, 0.3)]
    await batch_log.close()
    return found


def test_workers_share_the_partitions_and_take_over_a_dead_one() -> None:
    with temporary_database() as conninfo:
        store = PostgresStore(conninfo, pool_size=2)
        store.migrate()
        try:
            assert store.lease("a", 4, 400) == [0, 1, 2, 3]
            assert store.lease("b", 4, 400) == []  # a holds them all until its next round
            assert store.lease("a", 4, 400) == [0, 1]  # two present: a keeps its share
            assert store.lease("b", 4, 400) == [2, 3]
            states = store.partition_states(4)
            assert [s.owner for s in states] == ["a", "a", "b", "b"]
            time.sleep(0.5)  # a stops renewing: dead
            assert store.lease("b", 4, 400) == [0, 1, 2, 3]
            store.release("b")
            assert [s.owner for s in store.partition_states(4)] == ["", "", "", ""]
        finally:
            store.close()


def test_background_jobs_run_in_workers_and_never_in_api_processes(
    tmp_path: Path, stream_names: tuple[str, str]
) -> None:
    with temporary_database() as conninfo:
        jobs = {}
        for role in ("api", "worker"):
            settings = msgspec.structs.replace(
                _settings(pg_url(conninfo), stream_names, role), data_dir=str(tmp_path / role)
            )
            container = build(settings)
            container.start()
            try:
                jobs[role] = set(container.jobs())
            finally:
                container.close()
        assert jobs["api"] == {"audience-estimates"}
        assert {
            "retention",
            "audience-schedule",
            "audience-backfill",
            "calculated-backfill",
            "dsr-requests",
            "delivery-reconcile",
        } <= jobs["worker"]
