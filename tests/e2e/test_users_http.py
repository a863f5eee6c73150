"""Users, roles and audience access against a real server: users and keys made with
`kindred users`, the admin API answering each role's key as its role allows (and the
bootstrap admin token as an admin), and two users' audiences kept apart by their access
levels."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import KINDRED, Server, make_server

pytestmark = pytest.mark.e2e

ADMIN_TOKEN = {"authorization": "Bearer e2e-admin-token"}


def users_cli(server: Server, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *KINDRED,
            "users",
            *args,
            "--config",
            str(server.config),
            "--data-dir",
            str(server.data_dir),
        ],
        env=server.env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def add_user(server: Server, name: str, role: str) -> dict[str, str]:
    """A store user of `role` and the bearer header of a key of theirs."""
    added = users_cli(server, "add", name, "--role", role, "--password-stdin", stdin="pw-" * 4)
    assert added.returncode == 0, added.stderr
    made = users_cli(server, "key", "create", name)
    assert made.returncode == 0, made.stderr
    return {"authorization": f"Bearer {json.loads(made.stdout)['key']}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("users"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def keys(server: Server) -> dict[str, dict[str, str]]:
    return {
        "viewer": add_user(server, "vera", "viewer"),
        "ann": add_user(server, "ann", "editor"),
        "bob": add_user(server, "bob", "editor"),
        "admin": add_user(server, "ada", "admin"),
    }


def call(
    server: Server, headers: dict[str, str], method: str, path: str, body: Any = None
) -> httpx.Response:
    return httpx.request(
        method, f"{server.url}/admin/v1{path}", json=body, headers=headers, timeout=30
    )


def audience(name: str, access: str | None = None, criteria: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "workspaces": [1],
        "criteria": criteria or {"attribute": "tier", "op": "equals", "value": "gold"},
    }
    if access is not None:
        body["access"] = access
    return body


def message(answer: httpx.Response) -> str:
    return str(answer.json()["errors"][0]["message"])


def test_each_roles_key_does_what_its_role_allows(
    server: Server, keys: dict[str, dict[str, str]]
) -> None:
    viewer, editor, admin = keys["viewer"], keys["ann"], keys["admin"]
    for headers in (viewer, editor, admin, ADMIN_TOKEN):
        assert call(server, headers, "GET", "/audiences").status_code == 200
        assert call(server, headers, "GET", "/merges").status_code == 200
    refused = call(server, viewer, "POST", "/audiences", audience("by a viewer"))
    assert refused.status_code == 403
    assert "needs the editor role; vera is a viewer" in message(refused)
    refused = call(server, viewer, "POST", "/outputs", {"name": "x", "kind": "jsonl"})
    assert refused.status_code == 403
    made = call(server, editor, "POST", "/audiences", audience("by an editor"))
    assert made.status_code == 201, made.text
    assert made.json()["created_by"] == "ann"
    assert made.json()["access"] == "usable"
    delete = {"mpids": ["123456"]}
    refused = call(server, editor, "POST", "/profiles/delete", delete)
    assert refused.status_code == 403
    assert "needs the admin role; ann is an editor" in message(refused)
    for headers in (admin, ADMIN_TOKEN):
        assert call(server, headers, "POST", "/profiles/delete", delete).status_code == 200
    by_token = call(server, ADMIN_TOKEN, "POST", "/audiences", audience("by the token"))
    assert by_token.json()["created_by"] == "admin token"


def test_missing_unknown_and_revoked_keys_are_401(
    server: Server, keys: dict[str, dict[str, str]]
) -> None:
    assert call(server, {}, "GET", "/audiences").status_code == 401
    assert call(server, {"authorization": "Bearer nope"}, "GET", "/audiences").status_code == 401
    cara = add_user(server, "cara", "editor")
    assert call(server, cara, "GET", "/audiences").status_code == 200
    key_id = cara["authorization"].split("_")[1]
    revoked = users_cli(server, "key", "revoke", "cara", key_id)
    assert revoked.returncode == 0, revoked.stderr
    answer = call(server, cara, "GET", "/audiences")
    assert answer.status_code == 401
    assert "revoked" in message(answer)
    assert keys  # the other users' keys still work:
    assert call(server, keys["ann"], "GET", "/audiences").status_code == 200


def test_a_role_changed_with_the_cli_counts_at_once(server: Server) -> None:
    dan = add_user(server, "dan", "viewer")
    assert call(server, dan, "POST", "/audiences", audience("dan's")).status_code == 403
    assert users_cli(server, "set-role", "dan", "editor").returncode == 0
    assert call(server, dan, "POST", "/audiences", audience("dan's")).status_code == 201
    assert users_cli(server, "remove", "dan").returncode == 0
    assert call(server, dan, "GET", "/audiences").status_code == 401


def test_the_cli_refuses_a_config_users_name_and_lists_users(server: Server) -> None:
    # kindred-e2e.toml's [[ui.users]] holds "tester".
    clash = users_cli(
        server, "add", "tester", "--role", "viewer", "--password-stdin", stdin="x" * 9
    )
    assert clash.returncode != 0
    assert "in the config file" in clash.stderr
    listed = json.loads(users_cli(server, "list").stdout)
    tester = next(u for u in listed if u["name"] == "tester")
    assert (tester["role"], tester["origin"]) == ("admin", "config")


def ids(answer: httpx.Response) -> set[int]:
    assert answer.status_code == 200, answer.text
    return {a["id"] for a in answer.json()}


def test_audience_access_between_two_users(server: Server, keys: dict[str, dict[str, str]]) -> None:
    ann, bob, viewer = keys["ann"], keys["bob"], keys["viewer"]
    made = call(server, ann, "POST", "/audiences", audience("ann private", "private"))
    assert made.status_code == 201, made.text
    private_id = made.json()["id"]
    # Private: invisible to bob and the viewer, seen by ann and admins.
    assert private_id not in ids(call(server, bob, "GET", "/audiences"))
    assert private_id not in ids(call(server, viewer, "GET", "/audiences"))
    assert private_id in ids(call(server, ann, "GET", "/audiences"))
    assert private_id in ids(call(server, keys["admin"], "GET", "/audiences"))
    assert private_id in ids(call(server, ADMIN_TOKEN, "GET", "/audiences"))
    assert call(server, bob, "GET", f"/audiences/{private_id}").status_code == 404
    assert call(server, bob, "DELETE", f"/audiences/{private_id}").status_code == 404
    nesting = audience("bob nests", criteria={"and": [{"audience": private_id}]})
    refused = call(server, bob, "POST", "/audiences", nesting)
    assert refused.status_code == 400
    assert "criteria.and[0].audience" in refused.text

    # View only: bob sees it, may not change, use or nest it.
    changed = call(server, ann, "PUT", f"/audiences/{private_id}", audience("ann's", "view"))
    assert changed.status_code == 200, changed.text
    assert changed.json()["updated_by"] == "ann"
    assert call(server, bob, "GET", f"/audiences/{private_id}").status_code == 200
    refused = call(server, bob, "PUT", f"/audiences/{private_id}", audience("taken"))
    assert refused.status_code == 403
    assert "belongs to ann" in message(refused)
    refused = call(server, bob, "POST", f"/audiences/{private_id}/activate")
    assert refused.status_code == 403
    refused = call(server, bob, "GET", f"/audiences/{private_id}/download?identity_types=email")
    assert refused.status_code == 403
    assert "view only" in message(refused)
    refused = call(server, bob, "POST", "/audiences", nesting)
    assert refused.status_code == 400
    assert "view only" in message(refused)
    assert refused.json()["errors"][0]["message"]

    # A definition sent without `access` keeps it.
    kept = call(server, ann, "PUT", f"/audiences/{private_id}", audience("ann's again"))
    assert kept.json()["access"] == "view"

    # Usable: bob nests it and downloads it, still may not delete it; an admin may.
    opened = call(server, ann, "PUT", f"/audiences/{private_id}", audience("ann's", "usable"))
    assert opened.json()["access"] == "usable"
    # The history keeps each access chosen, and who chose it.
    versions = call(server, ann, "GET", f"/audiences/{private_id}/versions").json()
    last = versions[-1]["version"]
    changes = call(server, ann, "GET", f"/audiences/{private_id}/diff?from={last - 1}&to={last}")
    assert changes.status_code == 200, changes.text
    assert {"path": "access", "before": "view", "after": "usable", "change": "changed"} in (
        changes.json()["changes"]
    )
    assert versions[-1]["saved_by"] == "ann"
    nested = call(server, bob, "POST", "/audiences", nesting)
    assert nested.status_code == 201, nested.text
    assert (
        call(
            server, bob, "GET", f"/audiences/{private_id}/download?identity_types=email"
        ).status_code
        == 200
    )
    # A viewer sees it and its members, but exports no identities (the editor role).
    as_viewer = f"/audiences/{private_id}/download?identity_types=email"
    assert call(server, viewer, "GET", as_viewer).status_code == 403
    assert call(server, viewer, "GET", f"/audiences/{private_id}").status_code == 200
    refused = call(server, bob, "DELETE", f"/audiences/{private_id}")
    assert refused.status_code == 403
    assert call(server, bob, "DELETE", f"/audiences/{nested.json()['id']}").status_code == 200
    assert call(server, keys["admin"], "DELETE", f"/audiences/{private_id}").status_code == 200


def test_connecting_an_audience_is_using_it(
    server: Server, keys: dict[str, dict[str, str]]
) -> None:
    ann, bob = keys["ann"], keys["bob"]
    output = {"name": "users-file", "kind": "jsonl", "directory": str(server.data_dir / "out")}
    assert call(server, ADMIN_TOKEN, "POST", "/outputs", output).status_code in (200, 201)
    seen_only = call(server, ann, "POST", "/audiences", audience("ann view", "view")).json()["id"]
    connection = {
        "name": "bob-connects",
        "audience_id": seen_only,
        "output": "users-file",
        "identity_types": ["email"],
    }
    refused = call(server, bob, "POST", "/connections/audiences", connection)
    assert refused.status_code == 403
    assert "view only" in message(refused)
    bulk = {"output": "users-file", "identity_types": ["email"], "audiences": [seen_only]}
    assert call(server, bob, "POST", "/connections/audiences/bulk", bulk).status_code == 403
    made = call(server, ann, "POST", "/connections/audiences", connection)
    assert made.status_code == 201, made.text


def test_a_private_audiences_connections_are_out_of_others_sight(
    server: Server, keys: dict[str, dict[str, str]]
) -> None:
    """docs/audiences.md: a private audience's routes answer others 404; so do those of
    its connections, which are not listed to them, nor replaced by a save of theirs."""
    ann, bob, viewer = keys["ann"], keys["bob"], keys["viewer"]
    output = {"name": "private-file", "kind": "jsonl", "directory": str(server.data_dir / "p")}
    assert call(server, ADMIN_TOKEN, "POST", "/outputs", output).status_code in (200, 201)
    hidden = call(server, ann, "POST", "/audiences", audience("ann hidden", "private")).json()
    open_one = call(server, ann, "POST", "/audiences", audience("ann open", "usable")).json()
    for name, audience_id in (("ann-hidden", hidden["id"]), ("ann-open", open_one["id"])):
        body = {
            "name": name,
            "audience_id": audience_id,
            "output": "private-file",
            "identity_types": ["email"],
        }
        made = call(server, ann, "POST", "/connections/audiences", body)
        assert made.status_code == 201, made.text

    def listed(headers: dict[str, str]) -> tuple[set[str], set[str]]:
        answer = call(server, headers, "GET", "/connections")
        assert answer.status_code == 200, answer.text
        found = answer.json()
        return (
            {c["name"] for c in found["audience_connections"]},
            {s["name"] for s in found["status"]},
        )

    for outsider in (bob, viewer):
        names, statuses = listed(outsider)
        assert "ann-open" in names
        assert "ann-open" in statuses
        assert "ann-hidden" not in names
        assert "ann-hidden" not in statuses
    for insider in (ann, keys["admin"], ADMIN_TOKEN):
        names, statuses = listed(insider)
        assert {"ann-hidden", "ann-open"} <= names & statuses
    # As no connection: resume, delete; a save of the same name is refused.
    assert call(server, bob, "POST", "/connections/ann-hidden/resume").status_code == 404
    assert call(server, bob, "POST", "/connections/nobody/resume").status_code == 404
    assert call(server, bob, "DELETE", "/connections/ann-hidden").status_code == 404
    taken = {
        "name": "ann-hidden",
        "audience_id": open_one["id"],
        "output": "private-file",
        "identity_types": ["email"],
    }
    refused = call(server, bob, "POST", "/connections/audiences", taken)
    assert refused.status_code == 400
    assert "a connection named 'ann-hidden' exists" in message(refused)
    bulk = {
        "output": "private-file",
        "identity_types": ["email"],
        "audiences": [{"audience_id": open_one["id"], "name": "ann-hidden"}],
    }
    assert call(server, bob, "POST", "/connections/audiences/bulk", bulk).status_code == 400
    letters = call(server, bob, "GET", "/dead-letters?connection=ann-hidden")
    assert letters.status_code == 200
    assert letters.json() == []
    # The owner still has both, as they were.
    names, _ = listed(ann)
    assert {"ann-hidden", "ann-open"} <= names
    kept = call(server, ann, "GET", "/connections").json()["audience_connections"]
    assert [c["audience_id"] for c in kept if c["name"] == "ann-hidden"] == [hidden["id"]]
    assert call(server, ann, "POST", "/connections/ann-hidden/resume").status_code == 200
    assert call(server, ann, "DELETE", "/connections/ann-hidden").status_code == 204
