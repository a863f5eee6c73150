"""The Profile API benchmark's baseline: a bare HTTP server doing the same point read.

`GET /userprofile/v1/{org}/{account}/{workspace}/{mpid}` answers the stored row of the
profile (document and memberships, with the very statement Kindred's store reads) as it
is: no token, no definitions, no decoding, no projection, no metrics. It runs on the same
HTTP server, event loop and parser as `kindred serve` (uvicorn, uvloop, httptools) with
the same number of worker processes, so the CPU per read of Kindred against it is what
Kindred adds to the least any server must do for the read. bench/profile_api.py starts it
and runs it interleaved with Kindred.

    python bench/bare_read.py --data-dir bench/out/sqlite --port 8090 --workers 1
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import answer_lifespan, serve_bare
from kindred.storage.postgres.setops import PROFILE_COLUMNS as PG_COLUMNS
from kindred.storage.sqlite.setops import PROFILE_COLUMNS as SQLITE_COLUMNS

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

PREFIX = "/userprofile/v1/"
_DATA_DIR_ENV, _STORE_URL_ENV = "BARE_READ_DATA_DIR", "BARE_READ_STORE_URL"
_JSON = [(b"content-type", b"application/json")]


class BareRead:
    """One connection per process, opened at the first request (after the fork)."""

    def __init__(self, data_dir: str, store_url: str | None) -> None:
        self._data_dir = data_dir
        self._store_url = store_url
        self._read: Callable[[int], tuple[Any, Any] | None] | None = None

    def _reader(self) -> Callable[[int], tuple[Any, Any] | None]:
        if self._store_url:
            pg = psycopg.connect(self._store_url, autocommit=True)
            query = f"SELECT {PG_COLUMNS} FROM profiles WHERE mpid = %s"
            return lambda mpid: pg.execute(query, (mpid,), prepare=True).fetchone()
        path = Path(self._data_dir) / "kindred.db"
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        statement = f"SELECT {SQLITE_COLUMNS} FROM profiles WHERE mpid = ?"
        return lambda mpid: conn.execute(statement, (mpid,)).fetchone()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        status, body = 404, b'{"errors":"not found"}'
        path: str = scope["path"]
        if path == "/healthz":
            status, body = 200, b'{"status":"ok"}'
        elif path.startswith(PREFIX) and path.count("/") == 6:
            if self._read is None:
                self._read = self._reader()
            row = self._read(int(path.rsplit("/", 1)[1]))
            if row is not None:
                status, body = 200, _body(row[0])
        headers = [(b"content-length", str(len(body)).encode()), *_JSON]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _body(doc: bytes | str) -> bytes:
    return doc.encode() if isinstance(doc, str) else bytes(doc)


def app() -> BareRead:
    """The app of a worker process (uvicorn's factory): the store from the environment."""
    return BareRead(os.environ[_DATA_DIR_ENV], os.environ.get(_STORE_URL_ENV) or None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--store-url")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    os.environ[_DATA_DIR_ENV] = args.data_dir
    os.environ[_STORE_URL_ENV] = args.store_url or ""
    serve_bare("bench.bare_read:app", args.port, args.workers, factory=True)


if __name__ == "__main__":
    main()
