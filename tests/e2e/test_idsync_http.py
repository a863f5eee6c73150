"""IDSync over HTTP against a real server (IDS-1 … IDS-6, ING-3): the calls and their
status codes, the three ways of authenticating, merges through login and alias, the
ledger and un-merge from the CLI, quarantine list and replay."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

WEB = {"x-mp-key": "web-key"}


def idsync(
    server: Server, path: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        f"{server.url}{path}",
        content=json.dumps(body).encode(),
        headers=WEB if headers is None else headers,
        timeout=10,
    )


def identify(
    server: Server, known: dict[str, str], path: str = "/v1/identify", **extra: Any
) -> dict[str, Any]:
    body = {"environment": "development", "known_identities": known, **extra}
    response = idsync(server, path, body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_identify_answers_the_public_shape(server: Server) -> None:
    first = identify(server, {"device_application_stamp": "e2e-das-1"})
    assert set(first) == {"context", "mpid", "matched_identities", "is_ephemeral", "is_logged_in"}
    assert isinstance(first["mpid"], str)
    assert first["matched_identities"] == {}
    again = identify(server, {"device_application_stamp": "e2e-das-1"}, "/identity/v1/identify")
    assert again["mpid"] == first["mpid"]
    assert again["matched_identities"] == {"device_application_stamp": "e2e-das-1"}
    assert again["is_logged_in"] is False


def test_login_logout_and_search(server: Server) -> None:
    anon = identify(server, {"device_application_stamp": "e2e-das-2"})["mpid"]
    login = identify(
        server,
        {"customerid": "e2e-idsync-1", "device_application_stamp": "e2e-das-2"},
        "/v1/login",
        previous_mpid=anon,
    )
    assert (login["mpid"], login["is_logged_in"]) == (anon, True)
    logout = identify(
        server, {"device_application_stamp": "e2e-das-2"}, "/v1/logout", previous_mpid=anon
    )
    assert logout["mpid"] != anon
    found = identify(server, {"customerid": "e2e-idsync-1"}, "/v1/search")
    assert found["mpid"] == anon
    missing = idsync(
        server,
        "/v1/search",
        {"environment": "development", "known_identities": {"customerid": "nobody-here"}},
    )
    assert missing.status_code == 404
    assert missing.json()["Errors"][0]["code"] == "NOT_FOUND"
    assert missing.headers["access-control-allow-origin"] == "*"


def test_modify_changes_identities_and_refuses_what_it_must(server: Server) -> None:
    mpid = identify(server, {"customerid": "e2e-mod-1"})["mpid"]
    change = {"identity_type": "email", "old_value": None, "new_value": "mod1@example.com"}
    body = {"environment": "development", "identity_changes": [change]}
    ok = idsync(server, f"/v1/{mpid}/modify", body)
    assert ok.status_code == 200, ok.text
    assert ok.json()["change_results"] == [{"identity_type": "email", "modified_mpid": mpid}]
    stored = server.profile(mpid=mpid)
    assert stored is not None
    assert stored["user_identities"]["email"]["value"] == "mod1@example.com"
    immutable = {"identity_type": "customerid", "old_value": "e2e-mod-1", "new_value": "x"}
    refused = idsync(server, f"/v1/{mpid}/modify", {"identity_changes": [immutable]})
    assert refused.status_code == 400
    assert "immutable" in refused.json()["errors"][0]["message"]
    assert idsync(server, "/v1/12345/modify", body).status_code == 404


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"known_identities": {"email": "a@b.c"}}, "environment"),
        ({"environment": "production", "known_identities": {}}, "at least one identity"),
        ({"environment": "production", "known_identities": {"shoe_size": "9"}}, "shoe_size"),
        (
            {"environment": "production", "known_identities": {"email": "a"}, "previous_mpid": 1.5},
            "previous_mpid",
        ),
    ],
)
def test_bad_requests_name_the_field(server: Server, body: dict[str, Any], names: str) -> None:
    response = idsync(server, "/v1/identify", body)
    assert response.status_code == 400
    assert names in response.json()["errors"][0]["message"]


def test_authentication(server: Server) -> None:
    body = {"environment": "production", "known_identities": {"email": "auth@example.com"}}
    assert idsync(server, "/v1/identify", body, headers={}).status_code == 401
    assert idsync(server, "/v1/identify", body, headers={"x-mp-key": "nope"}).status_code == 403
    # A server key is not enough on its own: its secret must come along.
    assert (
        idsync(server, "/v1/identify", body, headers={"x-mp-key": "server-key"}).status_code == 403
    )
    basic = base64.b64encode(b"server-key:server-secret").decode()
    assert (
        idsync(server, "/v1/identify", body, {"authorization": f"Basic {basic}"}).status_code == 200
    )
    raw = json.dumps(body).encode()
    date = "20261122T120000Z"
    digest = hmac.new(
        b"server-secret", b"POST\n" + date.encode() + b"\n/v1/identify" + raw, hashlib.sha256
    )
    signed = {"x-mp-key": "server-key", "date": date, "x-mp-signature": digest.hexdigest()}
    response = httpx.post(f"{server.url}/v1/identify", content=raw, headers=signed)
    assert response.status_code == 200, response.text
    signed["x-mp-signature"] = "0" * 64
    assert httpx.post(f"{server.url}/v1/identify", content=raw, headers=signed).status_code == 403
    # As mParticle's Android SDK sends it: the body gzipped, the signature of the JSON in it.
    signed["x-mp-signature"] = digest.hexdigest()
    zipped = {**signed, "content-encoding": "gzip", "content-type": "application/json"}
    response = httpx.post(f"{server.url}/v1/identify", content=gzip.compress(raw), headers=zipped)
    assert response.status_code == 200, response.text
    assert response.json()["mpid"] == identify(server, {"email": "auth@example.com"})["mpid"]


def test_a_login_merge_shows_in_the_ledger_and_can_be_undone(server: Server) -> None:
    known = identify(server, {"customerid": "e2e-merge-1"})["mpid"]
    anon = identify(server, {"device_application_stamp": "e2e-das-merge"})["mpid"]
    batch = {"mpid": anon, "mp_deviceid": "e2e-das-merge", "user_attributes": {"cart": "full"}}
    assert httpx.post(f"{server.url}/webevents/v3/JS/web-key/events", json=batch).status_code == 202
    login = identify(
        server,
        {"customerid": "e2e-merge-1", "device_application_stamp": "e2e-das-merge"},
        "/v1/login",
        previous_mpid=anon,
    )
    assert login["mpid"] == known
    survivor = server.profile(mpid=known)
    assert survivor is not None
    assert survivor["workspaces"]["1"]["attributes"]["cart"]["value"] == "full"
    merges = json.loads(server.cli("identity", "merges", "--mpid", anon).stdout)
    (entry,) = merges
    assert (entry["survivor"], entry["merged"], entry["rule"]) == (known, anon, "login")
    assert entry["identity"] == "customer_id=e2e-merge-1"

    undone = json.loads(server.cli("identity", "unmerge", str(entry["id"])).stdout)
    assert undone["merge"] == entry["id"]
    restored = server.profile(mpid=anon)
    assert restored is not None
    assert "merged_into" not in restored
    assert restored["workspaces"]["1"]["attributes"]["cart"]["value"] == "full"
    known_after = server.profile(mpid=known)
    assert known_after is not None
    assert "cart" not in known_after["workspaces"].get("1", {}).get("attributes", {})
    again = server.cli("identity", "unmerge", str(entry["id"]), check=False)
    assert again.returncode == 1
    assert "already undone" in again.stderr


def test_the_sdk_alias_call_and_the_cli_alias(server: Server) -> None:
    source = identify(server, {"device_application_stamp": "e2e-das-alias"})["mpid"]
    destination = identify(server, {"customerid": "e2e-alias-1"})["mpid"]
    alias = {
        "request_id": "r-1",
        "request_type": "alias",
        "environment": "development",
        "api_key": "web-key",
        "data": {
            "source_mpid": source,
            "destination_mpid": destination,
            "start_unixtime_ms": 0,
            "end_unixtime_ms": 1,
        },
    }
    response = httpx.post(f"{server.url}/webevents/v1/identity/web-key/Alias", json=alias)
    assert response.status_code == 202, response.text
    stub = server.profile(mpid=source)
    assert stub is not None
    assert stub["merged_into"] == destination
    same = httpx.post(f"{server.url}/v1/identity/web-key/Alias", json=alias)
    assert same.status_code == 400  # source and destination are one profile now
    other = identify(server, {"device_application_stamp": "e2e-das-alias-2"})["mpid"]
    result = server.cli("identity", "alias", "--source", other, "--destination", destination)
    assert json.loads(result.stdout)["survivor"] == destination
    (latest, *_) = json.loads(server.cli("identity", "merges", "--mpid", other).stdout)
    assert latest["rule"] == "admin"


def test_remote_config_for_the_web_sdk(server: Server) -> None:
    response = httpx.get(f"{server.url}/tags/JS/v2/web-key/config", params={"env": "1"})
    assert response.status_code == 200
    assert response.json() == {"kitConfigs": [], "pixelConfigs": [], "flags": {}}
    assert httpx.get(f"{server.url}/tags/JS/v2/nope/config").status_code == 403
    preflight = httpx.options(
        f"{server.url}/v1/identify",
        headers={
            "origin": "https://shop.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "x-mp-key,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] in ("*", "https://shop.example")


def test_quarantined_batches_can_be_listed_and_replayed(server: Server, tmp_path: Path) -> None:
    long_value = "x" * 5000  # over accounts.guardrails.max_attribute_value_length (4096)
    batch = {"mp_deviceid": "e2e-das-q", "user_attributes": {"note": long_value}}
    response = httpx.post(f"{server.url}/webevents/v3/JS/web-key/events", json=batch)
    assert response.status_code == 202  # web batches are never refused
    listed = json.loads(server.cli("quarantine", "list").stdout)
    mine = [q for q in listed if "e2e-das-q" in q["body"]]
    assert len(mine) == 1
    assert "4096" in mine[0]["reason"]
    still = server.cli("quarantine", "replay", "--id", str(mine[0]["id"]), check=False)
    assert still.returncode == 1
    assert str(mine[0]["id"]) in json.loads(still.stdout)["still_invalid"]
    # With the guardrail raised, the same batch goes through.
    raised = tmp_path / "raised.toml"
    raised.write_text(
        server.config.read_text().replace(
            "max_attributes_per_profile = 5",
            "max_attributes_per_profile = 5\nmax_attribute_value_length = 8192",
        )
    )
    replayed = server.cli_with_config(raised, "quarantine", "replay", "--id", str(mine[0]["id"]))
    assert json.loads(replayed.stdout)["replayed"] == [mine[0]["id"]]
    profile = server.profile(identity="device_application_stamp=e2e-das-q")
    assert profile is not None
    assert profile["workspaces"]["1"]["attributes"]["note"]["value"] == long_value


def test_the_admin_api_lists_aliases_and_undoes_merges(server: Server) -> None:
    admin = {"authorization": "Bearer e2e-admin-token"}
    assert httpx.get(f"{server.url}/admin/v1/merges").status_code == 401
    # A credential that is neither the admin token nor a user's key: 401 as for none.
    wrong = httpx.get(f"{server.url}/admin/v1/merges", headers={"authorization": "Bearer x"})
    assert wrong.status_code == 401
    source = identify(server, {"device_application_stamp": "e2e-das-admin"})["mpid"]
    destination = identify(server, {"customerid": "e2e-admin-1"})["mpid"]
    body = {
        "source_mpid": source,
        "destination_mpid": destination,
        "start_unixtime_ms": 0,
        "end_unixtime_ms": 1,
        "workspace_id": 1,
    }
    aliased = httpx.post(f"{server.url}/admin/v1/alias", json=body, headers=admin)
    assert aliased.status_code == 200, aliased.text
    assert aliased.json()["survivor"] == destination
    listed = httpx.get(f"{server.url}/admin/v1/merges", params={"mpid": source}, headers=admin)
    (entry,) = listed.json()
    assert (entry["merged"], entry["rule"]) == (source, "admin")
    undone = httpx.post(f"{server.url}/admin/v1/merges/{entry['id']}/unmerge", headers=admin)
    assert undone.status_code == 200, undone.text
    restored = server.profile(mpid=source)
    assert restored is not None
    assert "merged_into" not in restored
    again = httpx.post(f"{server.url}/admin/v1/merges/{entry['id']}/unmerge", headers=admin)
    assert again.status_code == 400
    assert "already undone" in again.json()["errors"][0]["message"]
    bad = httpx.post(f"{server.url}/admin/v1/alias", json={"source_mpid": 1.5}, headers=admin)
    assert bad.status_code == 400
