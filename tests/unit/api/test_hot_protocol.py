"""Which requests the HTTP protocol answers inline (`api.hot_protocol`): a plain read by
MPID, in one write and without an ASGI task; anything else (another route, a body, a
response still being written, a client that stopped reading) goes the ASGI way."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from kindred.api.app import create_app
from kindred.api.hot_protocol import HOT_PROTOCOL, HotReadProtocol
from kindred.bootstrap import build
from kindred.config import load_settings
from kindred.storage.memory import MemoryStore
from tests.fakes import FakeClock

NOW = 1_700_000_000_000
READ = b"GET /userprofile/v1/1/1/1/12?fields=user_identities HTTP/1.1\r\nHost: t\r\n"


class Transport(asyncio.Transport):
    """What the protocol writes, one item per write."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 5555)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@pytest.fixture
def protocol(tmp_path: Path) -> Iterator[tuple[HotReadProtocol, Transport, ServerState]]:
    settings = load_settings(None, data_dir=str(tmp_path), env={})
    container = build(settings, store=MemoryStore(), clock=FakeClock(NOW))
    loop = asyncio.new_event_loop()
    config = Config(create_app(container, manage_lifecycle=False), http=HOT_PROTOCOL)
    config.load()
    state = ServerState()
    made = HotReadProtocol(config, state, {}, _loop=loop)
    transport = Transport()
    made.connection_made(transport)
    yield made, transport, state
    made.resume_writing()
    settle(loop, state)
    loop.close()
    container.close()


def settle(loop: asyncio.AbstractEventLoop, state: ServerState) -> None:
    """Run the ASGI tasks, and those they start, to their end."""
    while state.tasks:
        loop.run_until_complete(asyncio.gather(*state.tasks))


def test_a_plain_read_is_answered_in_one_write_without_a_task(
    protocol: tuple[HotReadProtocol, Transport, ServerState],
) -> None:
    made, transport, state = protocol
    made.data_received(READ + b"Authorization: Bearer x.y.z\r\n\r\n")
    (answer,) = transport.written
    assert answer.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b"\r\ncontent-type: application/json\r\n" in answer
    assert b"UNAUTHORIZED" in answer
    assert not state.tasks
    assert state.total_requests == 1
    # Then the next request on the connection, answered the same way.
    made.data_received(READ + b"\r\n")
    assert len(transport.written) == 2
    assert not state.tasks


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
        READ.replace(b"GET", b"HEAD") + b"\r\n",
        READ + b"Content-Length: 2\r\n\r\n{}",
        READ.replace(b"/12?", b"/%31%32?") + b"\r\n",
    ],
    ids=["other-route", "head", "body", "percent-encoded"],
)
def test_other_requests_go_the_asgi_way(
    protocol: tuple[HotReadProtocol, Transport, ServerState], request_bytes: bytes
) -> None:
    made, transport, state = protocol
    made.data_received(request_bytes)
    assert len(state.tasks) == 1
    assert not transport.written


def test_a_read_waits_behind_an_answer_still_being_written(
    protocol: tuple[HotReadProtocol, Transport, ServerState],
) -> None:
    made, transport, state = protocol
    made.data_received(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" + READ + b"\r\n")
    # The read is queued behind the first request, as uvicorn queues pipelined requests.
    assert len(state.tasks) == 1
    assert len(made.pipeline) == 1
    assert not transport.written
    settle(made.loop, state)
    # /healthz first (the container is not started: "starting"), then the read.
    assert transport.written[0].startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b'"starting"' in transport.written[1]
    assert transport.written[2].startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert state.total_requests == 2


def test_a_client_that_stopped_reading_gets_its_reads_the_asgi_way(
    protocol: tuple[HotReadProtocol, Transport, ServerState],
) -> None:
    made, transport, state = protocol
    made.pause_writing()
    made.data_received(READ + b"\r\n")
    assert len(state.tasks) == 1
    assert not transport.written
