"""`kindred serve --writer-process`: batches applied by a process of their own.

In one process the writer thread and the event loop take turns at one interpreter lock:
decoding, validating and answering a batch waits while a group is applied, and the other
way round. With a writer process, the HTTP processes decode, validate and normalize each
batch and send it (`wire.writer_frames`) over a Unix socket beside the store to one writer
process, whose group writer applies it and answers once its group is committed and
synced: a 202 still means the batch is durable. The writer has a core of its own.

What goes through it: the batches of the events API (accepted, refused, quarantined).
Everything else an HTTP process writes (IDSync, admin changes, CSV imports, background
jobs) it writes itself, as `--workers N` processes do; the store serializes the writers.

The HTTP processes' end is `remote_writer.RemoteWriter`. The serving process starts the
writer process before the HTTP processes, starts it again when it dies, and stops it
after them (`WriterProcess`). While it is away, batches are
answered 503 (nothing sent) or 504 (sent, no answer: send it again unchanged).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import multiprocessing
import os
import signal
import stat
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from kindred.bootstrap.remote_writer import failure_reply
from kindred.config import Settings, load_settings
from kindred.domain.errors import (
    InvalidBatch,
    KindredError,
    StoreUnavailable,
)
from kindred.domain.tenancy import Tenancy
from kindred.observability import configure_logging
from kindred.services.writes.commands import Accepted, BatchOutcome, Refused
from kindred.services.writes.group_writer import GroupWriter, WriterStopped
from kindred.wire.writer_frames import (
    FrameReader,
    RefusedFrame,
    ReplyFrame,
    RequestFrame,
    decode_request,
    encode_frame,
)

__all__ = ["WriterProcess", "serve_writer", "socket_path", "writer_main"]

log = logging.getLogger("kindred.writer_process")

# A Unix socket's path is at most 107 bytes on Linux.
_MAX_SOCKET_PATH = 100
_READY_TIMEOUT_S = 60.0
_RESTART_PAUSE_S = 0.5


def socket_path(settings: Settings) -> str:
    """Where the writer process listens: beside the store, in the data directory (0700).
    A data directory too deep for a socket's path gets a private directory under the
    system's temporary one instead, named after it."""
    data_dir = Path(settings.data_dir).resolve()
    beside = data_dir / "writer.sock"
    if len(str(beside)) <= _MAX_SOCKET_PATH:
        return str(beside)
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / f"kindred-writer-{digest}" / "writer.sock")


def _private_directory(path: Path) -> None:
    """The socket's directory, made 0700 if missing; refused when another user owns it
    or others may enter it (they could stand in for the writer process)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    found = path.stat()
    if found.st_uid != os.getuid() or stat.S_IMODE(found.st_mode) & 0o077:
        raise StoreUnavailable(f"{path}: not a private directory of this user")


# --- the writer process ----------------------------------------------------------------


class _Serving(asyncio.Protocol):
    """One HTTP process's connection: each request submitted to the group writer as it
    arrives, the replies of a loop turn written together."""

    def __init__(self, writer: GroupWriter, tenancy: Tenancy) -> None:
        self._writer = writer
        self._tenancy = tenancy
        self._reader = FrameReader()
        self._transport: asyncio.Transport | None = None
        self._replies: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            payloads = self._reader.feed(data)
        except ValueError as exc:
            log.error("writer link: %s; connection closed", exc)
            self._close()
            return
        for payload in payloads:
            try:
                frame = decode_request(payload)
            except Exception as exc:  # a peer that speaks something else
                log.error("writer link: unreadable frame (%r); connection closed", exc)
                self._close()
                return
            self._submit(frame)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002
        self._transport = None

    def _submit(self, frame: RequestFrame) -> None:
        try:
            command = self._command(frame)
            future = self._writer.submit_async(command)
        except WriterStopped:
            self._reply(ReplyFrame(frame.id, error="StoreUnavailable", message="stopping"))
            return
        except KindredError as exc:
            self._reply(failure_reply(frame.id, exc))
            return
        future.add_done_callback(lambda done: self._answer(frame.id, done))

    def _command(self, frame: RequestFrame) -> Accepted | Refused:
        if isinstance(frame, RefusedFrame):
            return Refused(frame.input, frame.received_ms, frame.kind, frame.reason, frame.body)
        source = self._tenancy.input_named(frame.input)
        if source is None:
            raise InvalidBatch(f"input {frame.input!r} is not in the writer's config")
        return Accepted(
            source,
            frame.observation,
            frame.body,
            client_ip=frame.client_ip,
            historical=frame.historical,
        )

    def _answer(self, request: int, done: asyncio.Future[BatchOutcome]) -> None:
        if done.cancelled():
            self._reply(ReplyFrame(request, error="StoreUnavailable", message="cancelled"))
            return
        exc = done.exception()
        if exc is None:
            outcome = done.result()
            self._reply(ReplyFrame(request, status=outcome.status, mpid=outcome.mpid))
        else:
            self._reply(failure_reply(request, exc))

    def _reply(self, reply: ReplyFrame) -> None:
        if not self._replies:
            asyncio.get_running_loop().call_soon(self._flush)
        self._replies.append(encode_frame(reply))

    def _flush(self) -> None:
        replies, self._replies = self._replies, []
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(replies))

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def writer_main(path: str, held: Connection) -> None:
    """The writer process: its settings from the environment, as `--workers N` processes
    find theirs; serves `path` until the server lets go of `held` (it stops this process,
    or it is gone), then drains its writer and ends.

    SIGINT and SIGTERM sent to the whole process group (Ctrl-C, a service manager's
    stop) are not for it: the server stops it itself, after its HTTP processes have
    answered their last batches."""
    from kindred.bootstrap.collector import serving_collector  # noqa: PLC0415
    from kindred.bootstrap.container import build  # noqa: PLC0415 - a process of its own

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settings = load_settings()
    configure_logging(settings.server.log_level, settings.server.log_format)
    container = build(settings)
    container.migrate()
    container.writer.start()
    serving_collector()
    try:
        asyncio.run(_until_let_go(container.writer, container.tenancy, path, held))
    finally:
        container.close()  # everything submitted is committed first


async def serve_writer(
    writer: GroupWriter, tenancy: Tenancy, path: str, stopped: asyncio.Event
) -> None:
    """Serve the HTTP processes' batches on the Unix socket `path` until `stopped` is set;
    then what was submitted is committed and answered, and the socket removed (unless
    a writer process started since has put its own there)."""
    loop = asyncio.get_running_loop()
    socket_file = Path(path)
    _private_directory(socket_file.parent)
    with contextlib.suppress(FileNotFoundError):
        socket_file.unlink()  # left by a writer process that was killed
    server = await loop.create_unix_server(lambda: _Serving(writer, tenancy), path)
    socket_file.chmod(0o600)
    ours = socket_file.stat().st_ino
    log.info("writer process %d serving %s", os.getpid(), path)
    try:
        await stopped.wait()
        server.close()
        # What was submitted is committed and answered before the connections close.
        await asyncio.to_thread(writer.stop)
        await asyncio.sleep(0.1)
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            if socket_file.stat().st_ino == ours:
                socket_file.unlink()


async def _until_let_go(writer: GroupWriter, tenancy: Tenancy, path: str, held: Connection) -> None:
    """Serves until `held` reads as closed: the server closed its end to stop this
    process, or the server is gone (killed -9: the kernel closed it), and a server
    started again starts a writer process of its own."""
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()

    def let_go() -> None:
        loop.remove_reader(held.fileno())
        stopped.set()

    loop.add_reader(held.fileno(), let_go)
    await serve_writer(writer, tenancy, path, stopped)


# --- the serving process's side --------------------------------------------------------


class WriterProcess:
    """The writer process, started before the HTTP processes and started again when it
    dies; `pid_file` names the one running."""

    def __init__(self, path: str, pid_file: Path) -> None:
        self._path = path
        self._pid_file = pid_file
        self._context = multiprocessing.get_context("spawn")
        self._process: multiprocessing.process.BaseProcess | None = None
        # The write end of the pipe the writer process watches: closed, it stops.
        self._held: Connection | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        self._spawn()
        self._watcher = threading.Thread(
            target=self._watch, name="kindred-writer-watch", daemon=True
        )
        self._watcher.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        if self._held is not None:
            self._held.close()  # the writer process drains its writer, then ends
        process = self._process
        if process is not None:
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join()
        if self._watcher is not None:
            self._watcher.join(timeout)
        with contextlib.suppress(FileNotFoundError):
            self._pid_file.unlink()

    def _spawn(self) -> None:
        if self._held is not None:
            self._held.close()  # the pipe of a writer process that died
        given, held = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=writer_main, args=(self._path, given), name="kindred-writer", daemon=False
        )
        process.start()
        given.close()  # the writer process has its own copy
        self._process, self._held = process, held
        _write_atomically(self._pid_file, f"{process.pid}\n")
        self._wait_ready(process)

    def _wait_ready(self, process: multiprocessing.process.BaseProcess) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline and process.is_alive():
            if _answers(self._path):
                return
            time.sleep(0.05)
        log.error("the writer process did not start listening at %s", self._path)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            if process is None:
                return
            process.join(0.5)
            if process.exitcode is None or self._stopping.is_set():
                continue
            log.error(
                "the writer process %s ended (exit %s); starting it again",
                process.pid,
                process.exitcode,
            )
            time.sleep(_RESTART_PAUSE_S)
            if not self._stopping.is_set():
                self._spawn()


def _write_atomically(path: Path, text: str) -> None:
    """Whoever reads `path` finds the old text or the new, never a file half written."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def _answers(path: str) -> bool:
    import socket  # noqa: PLC0415

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True
