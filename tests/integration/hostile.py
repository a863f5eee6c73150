"""The real ASGI app in this process (SQLite in a temporary directory, the e2e config), for
the tests of hostile input: an httpx client over the ASGI transport, signed in to the UI,
called synchronously (its event loop runs in a thread of its own)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec

from kindred.api.app import create_app
from kindred.bootstrap import Container, build
from kindred.config import load_settings

CONFIG = Path(__file__).resolve().parents[1] / "e2e" / "kindred-e2e.toml"
SERVER_AUTH = ("server-key", "server-secret")
WEB_EVENTS = "/v3/JS/web-key/events"
WEB_KEY = {"x-mp-key": "web-key"}
ADMIN = {"authorization": "Bearer e2e-admin-token"}

T = TypeVar("T")


class Client:
    """`request`, `get` and `post` as httpx's, answered by the app in this process."""

    def __init__(self, app: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://kindred.test")

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._run(self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        self._run(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def refusal(answer: httpx.Response, field: str) -> str:
    """The message of a 400 answer, which must name `field` (the start of its path)."""
    assert answer.status_code == 400, answer.text
    message = str(answer.json()["errors"][0]["message"])
    assert f"`{field}" in message, message
    return message


def serving(data_dir: Path) -> Iterator[tuple[Client, Container]]:
    settings = load_settings(CONFIG, data_dir=str(data_dir), env={})
    # No fsync per group: these tests are about answers, not durability.
    store = msgspec.structs.replace(settings.store, sqlite_synchronous="normal")
    container = build(msgspec.structs.replace(settings, store=store))
    container.start()
    client = Client(create_app(container, manage_lifecycle=False))
    try:
        signed_in = client.post("/ui/login", data={"name": "tester", "password": "tester-password"})
        assert signed_in.status_code == 303, signed_in.text
        yield client, container
    finally:
        client.close()
        container.close()
