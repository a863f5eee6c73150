"""The link between the HTTP processes and the writer process (`kindred serve
--writer-process`), over a real Unix socket with a group writer whose work a fake does.

Frames come out of the byte stream as they went in, however it is cut; an observation
arrives as the HTTP process made it; each batch is answered as the group writer answers
it: its outcome, or its refusal with the field named. The writer process away before a
batch is sent is "unavailable" (503); gone after it was sent, "outcome unknown" (504);
the next batch finds the writer again once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.bootstrap.remote_writer import RemoteWriter
from kindred.bootstrap.writer_process import serve_writer
from kindred.domain.errors import InvalidBatch, OutcomeUnknown, StoreUnavailable
from kindred.domain.observation import Observation
from kindred.domain.tenancy import AccountPolicy, InputDef, SourceType, Tenancy, WorkspaceDef
from kindred.observability import PrometheusMetrics
from kindred.services.writes.commands import Accepted, BatchOutcome, Command, Refused
from kindred.services.writes.group_writer import GroupWriter
from kindred.stream.writer_link import WriterLink
from kindred.wire.writer_frames import (
    MAX_FRAME_BYTES,
    AcceptedFrame,
    FrameReader,
    decode_request,
    encode_frame,
)
from tests.strategies import observations

WORKSPACE = WorkspaceDef(workspace_id=1, name="w", account=AccountPolicy(account_id=1))
WEB = InputDef(
    name="web", workspace=WORKSPACE, source_type=SourceType.WEB, api_key="k", api_secret=None
)
TENANCY = Tenancy(
    org_id=1, workspaces={1: WORKSPACE}, inputs_by_key={"k": WEB}, inputs_by_name={"web": WEB}
)
OBS = Observation(received_ms=1_000, effective_ms=1_000, user_identities={"customer_id": "a"})

Process = Callable[[Sequence[Command[Any]]], Sequence[Any]]


@given(
    payloads=st.lists(st.binary(max_size=300), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=4_000), max_size=8),
)
def test_frames_come_out_as_they_went_in_however_the_stream_is_cut(
    payloads: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(len(p).to_bytes(4, "big") + p for p in payloads)
    reader = FrameReader()
    out: list[bytes] = []
    start = 0
    for cut in sorted(c for c in cuts if c <= len(stream)):
        out.extend(reader.feed(stream[start:cut]))
        start = cut
    out.extend(reader.feed(stream[start:]))
    assert out == payloads


def test_a_frame_over_the_limit_breaks_the_stream() -> None:
    with pytest.raises(ValueError, match="over"):
        FrameReader().feed((MAX_FRAME_BYTES + 1).to_bytes(4, "big"))


@settings(max_examples=60)
@given(observation=observations(with_mpid=True))
def test_an_observation_arrives_as_the_http_process_made_it(observation: Observation) -> None:
    frame = AcceptedFrame(7, "web", observation, b"{}", "10.0.0.1", True)
    encoded = encode_frame(frame)
    (payload,) = FrameReader().feed(encoded)
    assert decode_request(payload) == frame


def _answers(commands: Sequence[Command[Any]]) -> list[object]:
    """Applied, with an MPID per customer; a refused batch kept as rejected; a batch of
    customer "bad" refused naming its field."""
    answers: list[object] = []
    for command in commands:
        if isinstance(command, Refused):
            answers.append(BatchOutcome(command.kind))
        elif isinstance(command, Accepted):
            customer = command.observation.user_identities.get("customer_id", "")
            if customer == "bad":
                answers.append(InvalidBatch("not a customer", "user_identities.customer_id"))
            else:
                answers.append(BatchOutcome("applied", mpid=len(customer)))
    return answers


@contextlib.asynccontextmanager
async def writer_process(path: str, process: Process = _answers) -> AsyncIterator[None]:
    """serve_writer on `path` with a group writer over `process`, until the block ends."""
    writer = GroupWriter(process)
    writer.start()
    stopped = asyncio.Event()
    serving = asyncio.create_task(serve_writer(writer, TENANCY, path, stopped))
    for _ in range(200):
        if Path(path).exists():
            break
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        stopped.set()
        await serving


@contextlib.asynccontextmanager
async def remote_writer(
    path: str, metrics: PrometheusMetrics | None = None
) -> AsyncIterator[RemoteWriter]:
    remote = RemoteWriter(WriterLink(path), metrics or PrometheusMetrics())
    try:
        yield remote
    finally:
        await remote.close()


def _accepted(customer: str) -> Accepted:
    obs = msgspec.structs.replace(OBS, user_identities={"customer_id": customer})
    return Accepted(WEB, obs, b'{"events": []}')


def _socket(tmp_path: Path) -> str:
    return str(tmp_path / "w.sock")


def test_each_batch_is_answered_with_its_outcome_and_counted(tmp_path: Path) -> None:
    metrics = PrometheusMetrics()

    async def scenario() -> list[BatchOutcome]:
        path = _socket(tmp_path)
        async with writer_process(path), remote_writer(path, metrics) as remote:
            refused = Refused("web", 5, "quarantined", "bad json", b"{")
            return await remote.submit([_accepted("abc"), refused, _accepted("abcdef")])

    outcomes = asyncio.run(scenario())
    assert outcomes == [
        BatchOutcome("applied", 3),
        BatchOutcome("quarantined"),
        BatchOutcome("applied", 6),
    ]
    assert metrics.batches.labels("web", "applied")._value.get() == 2


def test_a_refusal_keeps_the_field_it_names(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = _socket(tmp_path)
        async with writer_process(path), remote_writer(path) as remote:
            await remote.submit([_accepted("bad")])

    with pytest.raises(InvalidBatch) as refused:
        asyncio.run(scenario())
    assert refused.value.path == "user_identities.customer_id"
    assert refused.value.reason == "not a customer"


def test_an_input_the_writer_does_not_know_is_refused_by_name(tmp_path: Path) -> None:
    stranger = msgspec.structs.replace(WEB, name="stranger")

    async def scenario() -> None:
        path = _socket(tmp_path)
        async with writer_process(path), remote_writer(path) as remote:
            await remote.submit([Accepted(stranger, OBS, b"{}")])

    with pytest.raises(InvalidBatch, match="stranger"):
        asyncio.run(scenario())


def test_no_writer_process_is_unavailable_and_nothing_was_sent(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with remote_writer(_socket(tmp_path)) as remote:
            await remote.submit([_accepted("abc")])

    with pytest.raises(StoreUnavailable) as away:
        asyncio.run(scenario())
    assert not isinstance(away.value, OutcomeUnknown)


def test_a_writer_gone_with_the_batch_is_outcome_unknown_then_found_again(
    tmp_path: Path,
) -> None:
    path = _socket(tmp_path)

    async def vanishing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the batch arrived; the process dies before answering
        writer.transport.abort()

    async def scenario() -> tuple[BaseException | None, list[BatchOutcome]]:
        remote = RemoteWriter(WriterLink(path), PrometheusMetrics())
        server = await asyncio.start_unix_server(vanishing, path)
        lost: BaseException | None = None
        try:
            await remote.submit([_accepted("abc")])
        except OutcomeUnknown as exc:
            lost = exc
        server.close()
        await server.wait_closed()
        Path(path).unlink()
        async with writer_process(path):
            again = await remote.submit([_accepted("abcd")])
        await remote.close()
        return lost, again

    lost, again = asyncio.run(scenario())
    assert isinstance(lost, OutcomeUnknown)
    assert again == [BatchOutcome("applied", 4)]


def test_stopping_commits_and_answers_what_was_submitted(tmp_path: Path) -> None:
    """SIGTERM comes while a group is being applied: it is committed and answered before
    the writer process lets its connections go."""
    path = _socket(tmp_path)
    entered, release = threading.Event(), threading.Event()

    def slow(commands: Sequence[Command[Any]]) -> list[object]:
        entered.set()
        release.wait(10)
        return _answers(commands)

    async def scenario() -> list[BatchOutcome]:
        remote = RemoteWriter(WriterLink(path), PrometheusMetrics())
        writer = GroupWriter(slow)
        writer.start()
        stopped = asyncio.Event()
        serving = asyncio.create_task(serve_writer(writer, TENANCY, path, stopped))
        while not Path(path).exists():
            await asyncio.sleep(0.01)
        sent = asyncio.create_task(remote.submit([_accepted(f"c{n}") for n in range(5)]))
        await asyncio.to_thread(entered.wait, 10)
        stopped.set()
        await asyncio.sleep(0.05)
        release.set()
        outcomes = await sent
        await serving
        await remote.close()
        return outcomes

    outcomes = asyncio.run(scenario())
    assert [o.status for o in outcomes] == ["applied"] * 5
    assert not Path(path).exists()


def test_a_socket_directory_others_may_enter_is_refused(tmp_path: Path) -> None:
    """Another user could put a socket of their own there and be sent every batch."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)

    async def scenario() -> None:
        async with writer_process(str(shared / "w.sock")):
            pass

    with pytest.raises(StoreUnavailable, match="not a private directory"):
        asyncio.run(scenario())
