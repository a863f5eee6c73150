"""uvicorn's httptools protocol with the Profile API's point read answered inline.

A read by MPID is a synchronous computation (token, bucket, one point read, one encode), yet
through ASGI it costs a task, a request/response cycle object, two ASGI messages, a header
check per header and two socket writes: at thousands of reads a second, more CPU than the
read itself. This protocol answers such a request from the parser's callbacks and writes
the whole response at once, with the same handler (`FastPath.answer_read`: the same checks,
metrics and error bodies) and the same default headers as uvicorn's. Every other request,
and a read it cannot take simply (a body, percent-encoding, HTTP/1.0 or `Connection:
close`, a response still being written before it, a client not reading its answers), goes
the ASGI way unchanged.

Selected with `uvicorn.Config(http=HOT_PROTOCOL)`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from kindred.api.fastpath import FastPath
from kindred.api.profile_api import PROFILE_PREFIX

__all__ = ["HOT_PROTOCOL", "HotReadProtocol"]

HOT_PROTOCOL = f"{__name__}:HotReadProtocol"

_PREFIX = PROFILE_PREFIX.encode()
# Request headers that announce a body (a read has none) or ask for something other than a
# plain answer: such requests go the ASGI way.
_NOT_PLAIN = frozenset({b"content-length", b"transfer-encoding", b"expect", b"upgrade"})
_CRLF = b"\r\n"


class HotReadProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._reads = _fast_path(self.app)
        # The read being parsed, to be answered at its end: (path, query, authorization).
        self._hot: tuple[str, bytes, str | None] | None = None

    def on_headers_complete(self) -> None:
        self._hot = self._hot_read()
        if self._hot is None:
            super().on_headers_complete()

    def _hot_read(self) -> tuple[str, bytes, str | None] | None:
        if (
            self._reads is None
            or self.root_path
            or not self.url.startswith(_PREFIX)
            or self.parser.get_method() != b"GET"
            or self.parser.get_http_version() != "1.1"
            or not self.parser.should_keep_alive()
            or (self.cycle is not None and not self.cycle.response_complete)
            or self.pipeline
            or self.flow.write_paused
        ):
            return None
        authorization = None
        for name, value in self.headers:
            if name in _NOT_PLAIN:
                return None
            if name == b"authorization" and authorization is None:
                # The first, as the ASGI way takes it (`bodies.header`).
                authorization = value.decode("latin-1")
        parsed = httptools.parse_url(self.url)
        if b"%" in parsed.path:
            return None
        path = parsed.path.decode("ascii")
        if not self._reads.is_read(path):
            return None
        return path, parsed.query or b"", authorization

    def on_body(self, body: bytes) -> None:
        if self._hot is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        hot, self._hot = self._hot, None
        if hot is None:
            super().on_message_complete()
            return
        assert self._reads is not None
        if self.transport.is_closing():
            return
        status, body, headers = self._reads.answer_read(*hot)
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += (name, b": ", value, _CRLF)
        content += (b"content-length: ", str(len(body)).encode(), _CRLF)
        for name, value in headers:
            content += (name, b": ", value, _CRLF)
        content += (_CRLF, body)
        self.transport.write(b"".join(content))
        self.on_response_complete()


def _fast_path(app: Any) -> FastPath | None:
    """Kindred's app under uvicorn's middleware (each keeps the next as `app`)."""
    for _ in range(8):
        if isinstance(app, FastPath):
            return app
        app = getattr(app, "app", None)
    return None
