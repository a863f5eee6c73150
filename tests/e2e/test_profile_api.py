"""The Profile API over HTTP against a real server (API-1 … API-3, RET-1): tokens, the
public response shape, field selection, every status code, lifetime and token expiry moved
by the server's clock file, revocation, and tokens that outlive a restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, make_server

pytestmark = pytest.mark.e2e

SERVER = ("server-key", "server-secret")
AUDIENCE = "https://api.mparticle.com"
ALL_FIELDS = "device_identities,user_identities,user_attributes,audience_memberships,attribution"
DAY_MS = 86_400_000
# The public documentation's example profile, by structure: top-level keys and item keys.
SEED_TOP_LEVEL = {
    "mpid",
    "created_timestamp_ms",
    "last_stored_timestamp_ms",
    "is_opted_out",
    "limit_ad_tracking",
    "device_identities",
    "user_identities",
    "account_user_attributes",
    "user_attributes",
    "audience_memberships",
}
SEED_IDENTITY_KEYS = ["type", "encoding", "value"]


@pytest.fixture(scope="module")
def clock_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clock") / "offset-ms"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, clock_file: Path) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("profile-api"), clock_file=clock_file)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def moved_clock(clock_file: Path) -> Iterator[Path]:
    """Tests that move the server's clock put it back afterwards."""
    yield clock_file
    clock_file.write_text("0")


def token(server: Server, client_id: str = "e2e-client", secret: str | None = None) -> str:
    body = {
        "client_id": client_id,
        "client_secret": secret or client_id.replace("-client", "-secret"),
        "audience": AUDIENCE,
        "grant_type": "client_credentials",
    }
    response = httpx.post(f"{server.url}/oauth/token", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def read(
    server: Server, path: str, bearer: str | None, fields: str | None = ALL_FIELDS, **kw: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    params = {"fields": fields} if fields is not None else {}
    method = kw.pop("method", "GET")
    return httpx.request(
        method, f"{server.url}/userprofile/v1/{path}", headers=headers, params=params, **kw
    )


def resolve(server: Server, bearer: str, value: str, id_type: str = "customer_id") -> Any:
    body = {"environment_type": "production", "identity": {"type": id_type, "value": value}}
    return read(server, "resolve/1/1/1", bearer, content=json.dumps(body).encode())


def ingest(server: Server, customer: str, **fields: Any) -> None:
    batch = {
        "environment": "production",
        "user_identities": {"customer_id": customer, "email": f"{customer}@example.com"},
        **fields,
    }
    response = httpx.post(f"{server.url}/v2/events", json=batch, auth=SERVER, timeout=10)
    assert response.status_code == 202, response.text


def test_tokens_are_granted_for_json_form_and_basic_requests(api: Server) -> None:
    granted = [
        httpx.post(
            f"{api.url}/oauth/token",
            json={
                "client_id": "e2e-client",
                "client_secret": "e2e-secret",
                "audience": AUDIENCE,
                "grant_type": "client_credentials",
            },
        ),
        httpx.post(
            f"{api.url}/oauth/token",
            data={
                "client_id": "e2e-client",
                "client_secret": "e2e-secret",
                "grant_type": "client_credentials",
            },
        ),
        httpx.post(
            f"{api.url}/oauth/token",
            data={"grant_type": "client_credentials", "audience": AUDIENCE},
            auth=("e2e-client", "e2e-secret"),
        ),
    ]
    for response in granted:
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"access_token", "expires_in", "token_type"}
        assert (body["expires_in"], body["token_type"]) == (28800, "Bearer")
        assert response.headers["cache-control"] == "no-store"
        assert read(api, "1/1/1/1", body["access_token"]).status_code == 404  # accepted


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"client_secret": "nope"}, 401, "invalid_client"),
        ({"client_id": "nobody"}, 401, "invalid_client"),
        ({"audience": "https://elsewhere.example"}, 403, "access_denied"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": None}, 400, "invalid_request"),
    ],
)
def test_refused_token_requests_get_oauth_error_bodies(
    api: Server, body: dict[str, Any], status: int, error: str
) -> None:
    request = {
        "client_id": "e2e-client",
        "client_secret": "e2e-secret",
        "audience": AUDIENCE,
        "grant_type": "client_credentials",
        **body,
    }
    request = {k: v for k, v in request.items() if v is not None}
    response = httpx.post(f"{api.url}/oauth/token", json=request)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["error_description"]


def test_a_malformed_token_request_is_invalid(api: Server) -> None:
    response = httpx.post(f"{api.url}/oauth/token", content=b"{not json")
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


def test_a_profile_has_the_public_shape_and_an_exact_mpid(api: Server) -> None:
    ingest(
        api,
        "shape-1",
        device_info={"platform": "Android", "android_uuid": "8789c459016a94b0"},
        user_attributes={"$city": "New York", "ltv": 342.1, "recs": ["123849", "294933"]},
    )
    bearer = token(api)
    resolved = resolve(api, bearer, "shape-1")
    assert resolved.status_code == 200, resolved.text
    body = resolved.json()
    assert set(body) == SEED_TOP_LEVEL | {"attribution"}
    assert body["user_identities"] == [
        {"type": "customer_id", "encoding": "none", "value": "shape-1"},
        {"type": "email", "encoding": "none", "value": "shape-1@example.com"},
    ]
    assert [list(item) for item in body["user_identities"]] == [SEED_IDENTITY_KEYS] * 2
    assert {"type": "android_id", "encoding": "none", "value": "8789c459016a94b0"} in body[
        "device_identities"
    ]
    assert body["user_attributes"] == {
        "$city": "New York",
        "ltv": "342.1",
        "recs": ["123849", "294933"],
    }
    assert body["account_user_attributes"] is None
    assert body["audience_memberships"] == []
    assert (body["is_opted_out"], body["limit_ad_tracking"]) == (False, None)
    assert body["created_timestamp_ms"] <= body["last_stored_timestamp_ms"]

    mpid = body["mpid"]
    assert isinstance(mpid, int)
    by_mpid = read(api, f"1/1/1/{mpid}", bearer)
    assert by_mpid.status_code == 200
    assert by_mpid.json() == body
    # Exact digits on the wire (a float would have rounded them), the same as the store's.
    assert f'"mpid":{mpid},' in by_mpid.text
    stored = api.profile(identity="customer_id=shape-1")
    assert stored is not None
    assert stored["mpid"] == str(mpid)


def test_resolve_also_answers_post(api: Server) -> None:
    ingest(api, "post-1")
    body = {
        "environment_type": "development",
        "identity": {"type": "customer_id", "value": "post-1"},
    }
    response = read(api, "resolve/1/1/1", token(api), method="POST", json=body)
    assert response.status_code == 200
    assert response.json()["user_identities"][0]["value"] == "post-1"


@pytest.mark.parametrize(
    ("fields", "keys"),
    [
        ("user_identities", {"user_identities"}),
        ("user_attributes", {"user_attributes", "account_user_attributes"}),
        ("device_identities,attribution", {"device_identities", "attribution"}),
        ("audience_memberships", {"audience_memberships"}),
    ],
)
def test_only_the_fields_asked_for_come_back(api: Server, fields: str, keys: set[str]) -> None:
    ingest(api, "fields-1")
    bearer = token(api)
    mpid = resolve(api, bearer, "fields-1").json()["mpid"]
    body = read(api, f"1/1/1/{mpid}", bearer, fields=fields).json()
    base = {"mpid", "created_timestamp_ms", "last_stored_timestamp_ms", "is_opted_out"}
    assert set(body) == base | {"limit_ad_tracking"} | keys


@pytest.mark.parametrize(
    ("path", "fields", "names"),
    [
        ("1/1/1/5", None, "fields is required"),
        ("1/1/1/5", "", "fields is required"),
        ("1/1/1/5", "user_identities,bogus", "unknown field 'bogus'"),
        ("x/1/1/5", ALL_FIELDS, "orgId 'x' is not an integer"),
        ("1/y/1/5", ALL_FIELDS, "accountId 'y'"),
        ("1/1/z/5", ALL_FIELDS, "workspaceId 'z'"),
        ("1/1/1/12.5", ALL_FIELDS, "mpid '12.5' is not an integer"),
        ("1/1/1/99999999999999999999", ALL_FIELDS, "mpid 99999999999999999999 is out of"),
    ],
)
def test_bad_requests_name_what_is_wrong(
    api: Server, path: str, fields: str | None, names: str
) -> None:
    response = read(api, path, token(api), fields=fields)
    assert response.status_code == 400
    assert names in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (None, "a JSON body is required"),
        ({"environment_type": "production", "identity": {"type": "email", "value": "a"}}, "email"),
        ({"environment_type": "staging", "identity": {"type": "customer_id", "value": "a"}}, ""),
        ({"environment_type": "production"}, "identity"),
    ],
)
def test_bad_resolve_bodies_are_refused(api: Server, body: Any, names: str) -> None:
    content = b"" if body is None else json.dumps(body).encode()
    response = read(api, "resolve/1/1/1", token(api), content=content)
    assert response.status_code == 400
    assert names in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("bearer", [None, "garbage", "a.b.c", "basic"])
def test_requests_without_a_valid_token_are_unauthorized(api: Server, bearer: str | None) -> None:
    if bearer == "basic":  # the client's id and secret are for /oauth/token, not for reads
        url = f"{api.url}/userprofile/v1/1/1/1/5?fields=user_identities"
        response = httpx.get(url, auth=("e2e-client", "e2e-secret"))
    else:
        response = read(api, "1/1/1/5", bearer)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_a_credential_reads_only_its_workspaces(api: Server) -> None:
    response = read(api, "1/1/1/5", token(api, "other-client"))
    assert response.status_code == 403
    assert "workspace 1" in response.json()["errors"][0]["message"]
    # Its own workspace it may read, under the right org and account only.
    assert read(api, "1/1/2/5", token(api, "other-client")).status_code == 404
    assert "no workspace 2" in read(api, "9/1/2/5", token(api, "other-client")).text


def test_unknown_profiles_are_not_found(api: Server) -> None:
    assert read(api, "1/1/1/5", token(api)).status_code == 404
    assert resolve(api, token(api), "nobody-at-all").status_code == 404


def test_a_credential_over_its_rate_is_told_when_to_retry(api: Server) -> None:
    bearer = token(api, "slow-client")
    statuses = [read(api, "1/1/1/5", bearer).status_code for _ in range(3)]
    assert statuses == [404, 404, 429]
    limited = read(api, "1/1/1/5", bearer)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["errors"][0]["code"] == "TOO_MANY_REQUESTS"


def test_profiles_past_their_lifetime_are_gone(api: Server, moved_clock: Path) -> None:
    ingest(api, "aging-1")
    bearer = token(api)
    mpid = resolve(api, bearer, "aging-1").json()["mpid"]
    moved_clock.write_text(str(89 * DAY_MS))
    assert read(api, f"1/1/1/{mpid}", token(api)).status_code == 200
    moved_clock.write_text(str(91 * DAY_MS))
    fresh = token(api)
    expired = read(api, f"1/1/1/{mpid}", fresh)
    assert expired.status_code == 404
    assert "expired" in expired.json()["errors"][0]["message"]
    assert resolve(api, fresh, "aging-1").status_code == 404

    swept = json.loads(api.cli("sweep").stdout)
    assert swept["deleted"] >= 1
    assert api.profile(mpid=str(mpid)) is None
    assert api.profile(identity="customer_id=aging-1") is None
    # A returning user starts a new profile, served again.
    ingest(api, "aging-1")
    again = resolve(api, fresh, "aging-1")
    assert again.status_code == 200
    assert again.json()["mpid"] != mpid


def test_tokens_expire_after_eight_hours(api: Server, moved_clock: Path) -> None:
    bearer = token(api)
    moved_clock.write_text(str(28_790_000))  # ten seconds before (room for a slow machine)
    assert read(api, "1/1/1/5", bearer).status_code == 404
    moved_clock.write_text(str(28_801_000))
    expired = read(api, "1/1/1/5", bearer)
    assert expired.status_code == 401
    assert "expired" in expired.json()["errors"][0]["message"]


def test_revoked_credentials_lose_their_tokens(api: Server) -> None:
    created = json.loads(api.cli("credentials", "create", "--workspace", "1", "--name", "t").stdout)
    # The server re-reads the credentials every 2 seconds: the new one is known by then.
    deadline = time.monotonic() + 5
    while True:
        granted = httpx.post(
            f"{api.url}/oauth/token",
            json={
                "client_id": created["client_id"],
                "client_secret": created["client_secret"],
                "grant_type": "client_credentials",
            },
        )
        if granted.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert granted.status_code == 200, granted.text
    bearer = granted.json()["access_token"]
    assert read(api, "1/1/1/5", bearer).status_code == 404
    listed = json.loads(api.cli("credentials", "list").stdout)
    assert created["client_secret"] not in json.dumps(listed)
    assert created["client_id"] in [c["client_id"] for c in listed]
    api.cli("credentials", "revoke", created["client_id"])
    deadline = time.monotonic() + 5
    while read(api, "1/1/1/5", bearer).status_code != 401:
        assert time.monotonic() < deadline, "the revoked credential's token still works"
        time.sleep(0.2)
    refused = httpx.post(
        f"{api.url}/oauth/token",
        json={
            "client_id": created["client_id"],
            "client_secret": created["client_secret"],
            "grant_type": "client_credentials",
        },
    )
    assert refused.status_code == 401


def test_tokens_outlive_a_restart(fresh_server: Server) -> None:
    bearer = token(fresh_server)
    ingest(fresh_server, "restart-1")
    fresh_server.stop()
    fresh_server.start()
    assert resolve(fresh_server, bearer, "restart-1").status_code == 200


def test_the_openapi_document_describes_the_profile_api(api: Server) -> None:
    document = httpx.get(f"{api.url}/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/oauth/token",
        "/userprofile/v1/{orgId}/{accountId}/{workspaceId}/{mpid}",
        "/userprofile/v1/resolve/{orgId}/{accountId}/{workspaceId}",
    }
    profile_schema = document["components"]["schemas"]["ProfileResponse"]
    assert SEED_TOP_LEVEL | {"attribution"} == set(profile_schema["properties"])
