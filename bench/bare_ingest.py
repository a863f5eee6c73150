"""The ingest benchmark's baseline: a bare HTTP server that parses each batch and answers 202.

`POST /v2/events` reads the body, decodes its JSON and answers 202 with `{}`: no
credential, no validation, no store, no durability. It runs on the same HTTP server,
event loop and parser as `kindred serve` (uvicorn, uvloop, httptools) with the same number
of worker processes, so Kindred's throughput, latency and CPU per batch against it are
what Kindred adds to the least any server must do to take a batch. bench/ingest.py
(`--baseline`) starts it and runs it interleaved with Kindred.

    python bench/bare_ingest.py --port 8091 --workers 1
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.bare_ingest for uvicorn

from bench.common import answer_lifespan, serve_bare

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    status, body = 404, b'{"errors":"not found"}'
    if scope["path"] == "/healthz":
        status, body = 200, b'{"status":"ok"}'
    elif scope["path"] == "/v2/events" and scope["method"] == "POST":
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        try:
            json.loads(b"".join(chunks))
            status, body = 202, b"{}"
        except ValueError:
            status, body = 400, b'{"errors":"not JSON"}'
    elif scope["path"] == "/metrics":
        # bench/ingest.py reads the batch counter after a run; the bare server keeps none.
        status, body = 200, b""
    headers = [(b"content-length", str(len(body)).encode()), *_JSON]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    serve_bare("bench.bare_ingest:app", args.port, args.workers)


if __name__ == "__main__":
    main()
