"""The admin API's one check, through the application itself: a viewer's key sent to any
write route of the real route table (with any path values) is refused with 403 naming the
role needed, and nothing in the store changes; the same key reads."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kindred.api.app import create_app
from kindred.bootstrap import Container, build
from kindred.config import load_settings
from kindred.domain.users import role_needed
from tests.unit.domain.test_users import WRITE_ROUTES, filled, segments


@pytest.fixture(scope="module")
def container() -> Iterator[Container]:
    built = build(load_settings(None, data_dir=tempfile.mkdtemp(), env={}))
    built.migrate()
    yield built
    built.close()


@pytest.fixture(scope="module")
def viewer_key(container: Container) -> str:
    container.users.add("vera", "viewer", "a-long-password")
    return container.users.create_key("vera").key


def send(container: Container, method: str, path: str, key: str) -> httpx.Response:
    app = create_app(container, manage_lifecycle=False)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kindred") as client:
            return await client.request(
                method, path, json={}, headers={"authorization": f"Bearer {key}"}
            )

    return asyncio.run(call())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(route=st.sampled_from(WRITE_ROUTES), values=st.lists(segments, min_size=1, max_size=3))
def test_a_viewers_key_changes_nothing_through_any_write_route(
    container: Container, viewer_key: str, route: tuple[str, str], values: list[str]
) -> None:
    method, template = route
    path = filled(template, [quote(v, safe="") for v in values])
    before = container.store.definitions_version()
    answer = send(container, method, path, viewer_key)
    needed = role_needed(method, path).value
    assert answer.status_code == 403, (method, path, answer.text)
    assert f"needs the {needed} role; vera is a viewer" in answer.text
    assert container.store.definitions_version() == before


def test_a_viewers_key_reads(container: Container, viewer_key: str) -> None:
    assert send(container, "GET", "/admin/v1/audiences", viewer_key).status_code == 200
    assert send(container, "GET", "/admin/v1/audiences", "nope").status_code == 401
