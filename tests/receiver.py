"""A real local HTTP receiver for delivery tests: answers each POST as told (200, 429 with
Retry-After, 500, 400, or hangs), and keeps every message it accepted."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Answer", "Receiver", "receiving"]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    retry_after: str | None = None
    hang_s: float = 0.0


@dataclass
class Receiver:
    url: str = ""
    # Answers for the next requests, in order; then `default`.
    script: deque[Answer] = field(default_factory=deque)
    default: Answer = field(default_factory=Answer)
    messages: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> Answer:
        with self.lock:
            return self.script.popleft() if self.script else self.default

    def unique(self) -> list[dict[str, Any]]:
        """Messages after de-duplication by idempotency key, first arrival kept."""
        seen: set[str] = set()
        found = []
        with self.lock:
            for message in self.messages:
                key = message["idempotency_key"]
                if key not in seen:
                    seen.add(key)
                    found.append(message)
        return found

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.unique()
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"received {len(self.unique())} unique messages, wanted {count}")


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            answer = receiver.answer()
            with receiver.lock:
                receiver.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "status": answer.status,
                        "at": time.time(),
                        "body": body,
                    }
                )
            if answer.status == 200:
                # Kept before any hang: a receiver that took the messages and then was slow
                # to answer (the sender gives up and sends them again).
                received = json.loads(body)
                with receiver.lock:
                    # A JSON array of messages (outputs), or one object (status callbacks).
                    if isinstance(received, list):
                        receiver.messages.extend(received)
                    else:
                        receiver.messages.append(received)
            if answer.hang_s:
                time.sleep(answer.hang_s)
            self.send_response(answer.status)
            if answer.retry_after is not None:
                self.send_header("Retry-After", answer.retry_after)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
