"""IDSync with nothing but placeholder identities (`null`, `undefined`, empty strings ...)
is refused with 400 naming `known_identities` and makes no profile, as a batch with only
those makes none (IDS-4, reference §2.3: `known_identities` needs an identity)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kindred.bootstrap import Container
from tests.integration.hostile import WEB_KEY, Client, refusal, serving


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Container]]:
    yield from serving(tmp_path_factory.mktemp("placeholders"))


@pytest.fixture
def client(app: tuple[Client, Container]) -> Client:
    return app[0]


@pytest.fixture
def container(app: tuple[Client, Container]) -> Container:
    return app[1]


@pytest.mark.parametrize("call", ["identify", "login", "search", "logout"])
@pytest.mark.parametrize(
    "known",
    [
        {"email": "null"},
        {"email": "", "customerid": "undefined"},
        {"customerid": "  Anonymous ", "device_application_stamp": "0"},
    ],
)
def test_idsync_with_only_placeholder_identities_makes_no_profile(
    client: Client, container: Container, call: str, known: dict[str, str]
) -> None:
    logged = len(container.store.latest_log(10_000))
    profiles = container.profiles.count()
    request = {"environment": "production", "known_identities": known}
    answer = client.post(f"/v1/{call}", json=request, headers=WEB_KEY)
    message = refusal(answer, "known_identities")
    assert "usable identity" in message
    assert answer.json()["Errors"] == answer.json()["errors"]
    assert len(container.store.latest_log(10_000)) == logged  # nothing created or linked
    assert container.profiles.count() == profiles


def test_idsync_ignores_placeholders_beside_a_usable_identity(client: Client) -> None:
    request = {
        "environment": "production",
        "known_identities": {"email": "null", "customerid": "real-customer"},
    }
    answer = client.post("/v1/identify", json=request, headers=WEB_KEY)
    assert answer.status_code == 200, answer.text
    again = client.post("/v1/identify", json=request, headers=WEB_KEY)
    assert again.json()["mpid"] == answer.json()["mpid"]
    assert again.json()["matched_identities"] == {"customerid": "real-customer"}
