"""Profile API reads by MPID answered inline by the HTTP protocol (`api.hot_protocol`), on a
real server and raw sockets: answers in request order when requests are pipelined and
mixed with ones that go the ASGI way, the same answer whichever way a read goes, the
connection closed when asked, and the reads counted in the metrics."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Server, make_server
from tests.e2e.test_profile_api import ALL_FIELDS, ingest, resolve, token

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("hot-reads"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def reader(api: Server) -> tuple[str, int]:
    """A bearer token and the MPID of a stored profile."""
    ingest(api, "hot-1", user_attributes={"$city": "Lyon", "visits": 3})
    bearer = token(api)
    return bearer, int(resolve(api, bearer, "hot-1").json()["mpid"])


def request(path: str, bearer: str | None = None, *extra: str, version: str = "1.1") -> bytes:
    lines = [f"GET {path} HTTP/{version}", "Host: test"]
    if bearer is not None:
        lines.append(f"Authorization: Bearer {bearer}")
    return ("\r\n".join([*lines, *extra]) + "\r\n\r\n").encode()


def exchange(
    api: Server, data: bytes, answers: int
) -> tuple[list[tuple[int, dict[str, str], bytes]], bool]:
    """Send `data` at once; read `answers` responses, and whether the server then closed."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as conn:
        conn.sendall(data)
        buffer = b""
        found: list[tuple[int, dict[str, str], bytes]] = []
        while len(found) < answers:
            head, buffer = _until(conn, buffer, b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {
                name.lower(): value
                for name, _, value in (line.partition(": ") for line in header_lines)
            }
            length = int(headers["content-length"])
            while len(buffer) < length:
                buffer += _recv(conn)
            found.append((int(status_line.split()[1]), headers, buffer[:length]))
            buffer = buffer[length:]
        conn.settimeout(1)
        try:
            closed = conn.recv(1) == b""
        except TimeoutError:
            closed = False
    return found, closed


def _until(conn: socket.socket, buffer: bytes, mark: bytes) -> tuple[bytes, bytes]:
    while mark not in buffer:
        buffer += _recv(conn)
    head, _, rest = buffer.partition(mark)
    return head, rest


def _recv(conn: socket.socket) -> bytes:
    chunk = conn.recv(65536)
    if not chunk:
        raise AssertionError("the server closed the connection before answering")
    return chunk


def path_of(mpid: int) -> str:
    return f"/userprofile/v1/1/1/1/{mpid}?fields={ALL_FIELDS}"


def test_a_read_is_answered_as_over_asgi(api: Server, reader: tuple[str, int]) -> None:
    bearer, mpid = reader
    # With a body (empty), the read goes the ASGI way; without, it is answered inline.
    (inline, with_body), closed = exchange(
        api,
        request(path_of(mpid), bearer) + request(path_of(mpid), bearer, "Content-Length: 0"),
        2,
    )
    assert not closed
    assert inline[0] == with_body[0] == 200
    assert inline[2] == with_body[2]
    assert b'"$city":"Lyon"' in inline[2]
    assert inline[1]["content-type"] == with_body[1]["content-type"] == "application/json"
    assert inline[1]["server"] == with_body[1]["server"]
    assert "date" in inline[1]


def test_pipelined_requests_are_answered_in_order(api: Server, reader: tuple[str, int]) -> None:
    bearer, mpid = reader
    asked = [
        request("/healthz"),
        request(path_of(mpid), bearer),
        request(path_of(5), bearer),
        request(path_of(mpid), "not-a-token"),
        request("/healthz"),
        request(path_of(mpid), bearer),
    ]
    answers, closed = exchange(api, b"".join(asked), len(asked))
    assert [status for status, _, _ in answers] == [200, 200, 404, 401, 200, 200]
    assert answers[1][2] == answers[5][2]
    assert b'"status"' in answers[0][2]
    assert b'"status"' in answers[4][2]
    assert answers[3][1]["www-authenticate"].startswith("Bearer")
    assert b"UNAUTHORIZED" in answers[3][2]
    assert not closed


@pytest.mark.parametrize(
    ("extra", "version"), [(("Connection: close",), "1.1"), ((), "1.0")], ids=["close", "http1.0"]
)
def test_a_read_that_ends_the_connection_is_answered_then_closed(
    api: Server, reader: tuple[str, int], extra: tuple[str, ...], version: str
) -> None:
    bearer, mpid = reader
    (answer,), closed = exchange(api, request(path_of(mpid), bearer, *extra, version=version), 1)
    assert answer[0] == 200
    assert b'"$city":"Lyon"' in answer[2]
    assert closed


def test_reads_are_counted_in_the_metrics(api: Server, reader: tuple[str, int]) -> None:
    bearer, mpid = reader

    def counted(status: int) -> float:
        text = httpx.get(f"{api.url}/metrics", timeout=10).text
        pattern = rf'kindred_request_seconds_count\{{route="profile",status="{status}"\}} (\S+)'
        found = re.search(pattern, text)
        return float(found.group(1)) if found else 0.0

    before = counted(200), counted(404)
    exchange(api, request(path_of(mpid), bearer) * 3 + request(path_of(5), bearer), 4)
    assert (counted(200), counted(404)) == (before[0] + 3, before[1] + 1)
