"""Roles and audience access (domain.users): which role a request to the admin API needs,
and who may see, use and change an audience. The property tests draw requests from the
application's own route table, so a route added later is covered as it lands."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.api.app import create_app
from kindred.bootstrap import build
from kindred.config import load_settings
from kindred.domain.errors import AuthRejected, InvalidBatch
from kindred.domain.users import (
    ACCESS_LEVELS,
    Principal,
    Role,
    check_user_name,
    may_change,
    may_see,
    may_use,
    role_needed,
)

WRITES = ("POST", "PUT", "PATCH", "DELETE")


def admin_routes() -> list[tuple[str, str]]:
    """(method, path) of every admin API route of the application."""
    tmp = Path(__import__("tempfile").mkdtemp())
    container = build(load_settings(None, data_dir=str(tmp), env={}))
    try:
        app = create_app(container, manage_lifecycle=False)
        routes = set(app.endpoints())
        for route in app.fallback_routes():
            routes |= {(m, route.path) for m in route.methods}
    finally:
        container.store.close()
    return sorted(r for r in routes if r[1].startswith("/admin/"))


ROUTES = admin_routes()
WRITE_ROUTES = [r for r in ROUTES if r[0] in WRITES]
segments = st.text(st.characters(codec="ascii", exclude_characters="/?#"), min_size=1, max_size=8)


def filled(path: str, values: list[str]) -> str:
    """The route's path with its `{params}` replaced by `values`, in order."""
    parts = path.split("/")
    out, n = [], 0
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            out.append(values[n % len(values)])
            n += 1
        else:
            out.append(part)
    return "/".join(out)


def test_the_route_table_has_writes_of_every_family() -> None:
    families = {p.split("/")[3] for _, p in WRITE_ROUTES}
    assert {"audiences", "calculated-attributes", "outputs", "connections"} <= families
    assert ("POST", "/admin/v1/profiles/delete") in WRITE_ROUTES


@settings(max_examples=300)
@given(route=st.sampled_from(WRITE_ROUTES), values=st.lists(segments, min_size=1, max_size=3))
def test_a_viewer_may_never_change_anything(route: tuple[str, str], values: list[str]) -> None:
    method, template = route
    path = filled(template, values)
    needed = role_needed(method, path)
    assert needed is not Role.VIEWER
    with pytest.raises(AuthRejected, match=f"needs the {needed.value} role; ann is a viewer"):
        Principal("ann", Role.VIEWER).require(needed, f"{method} {path}")


@settings(max_examples=300)
@given(
    method=st.sampled_from(WRITES).flatmap(lambda m: st.sampled_from([m, m.lower()])),
    path=st.text(max_size=40).map(lambda t: "/admin/v1/" + t),
)
def test_no_write_to_any_path_is_a_viewers(method: str, path: str) -> None:
    assert role_needed(method, path) is not Role.VIEWER


@settings(max_examples=200)
@given(route=st.sampled_from(ROUTES), values=st.lists(segments, min_size=1, max_size=3))
def test_an_admin_may_call_every_route(route: tuple[str, str], values: list[str]) -> None:
    method, template = route
    Principal("root", Role.ADMIN).require(role_needed(method, filled(template, values)), "it")


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("GET", "/admin/v1/audiences", Role.VIEWER),
        ("HEAD", "/admin/v1/merges", Role.VIEWER),
        # Members' identities leave with a download: the editor role, as in the web UI.
        ("GET", "/admin/v1/audiences/7/download", Role.EDITOR),
        ("GET", "/admin/v1/audiences/download", Role.EDITOR),
        ("GET", "/admin/v1/audiences/7/downloads", Role.VIEWER),
        ("POST", "/admin/v1/audiences", Role.EDITOR),
        ("PUT", "/admin/v1/audiences/7", Role.EDITOR),
        ("POST", "/admin/v1/audiences/7/activate", Role.EDITOR),
        ("DELETE", "/admin/v1/calculated-attributes/x", Role.EDITOR),
        ("PATCH", "/admin/v1/outputs/hook", Role.EDITOR),
        ("POST", "/admin/v1/connections/audiences/bulk", Role.EDITOR),
        ("POST", "/admin/v1/profiles/delete", Role.ADMIN),
        ("POST", "/admin/v1/alias", Role.ADMIN),
        ("POST", "/admin/v1/merges/3/unmerge", Role.ADMIN),
        ("GET", "/admin/v1/users", Role.ADMIN),
        ("GET", "/admin/v1/credentials", Role.ADMIN),
        ("POST", "/admin/v1/audiencesX", Role.ADMIN),  # not under /audiences/
    ],
)
def test_the_role_each_request_needs(method: str, path: str, role: Role) -> None:
    assert role_needed(method, path) is role


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.covers(Role.EDITOR)
    assert Role.EDITOR.covers(Role.VIEWER)
    assert not Role.VIEWER.covers(Role.EDITOR)
    assert not Role.EDITOR.covers(Role.ADMIN)
    with pytest.raises(InvalidBatch, match="unknown role 'owner'"):
        Role.parse("owner")


ANN_EDITOR = Principal("ann", Role.EDITOR)
ANN_VIEWER = Principal("ann", Role.VIEWER)
BOB = Principal("bob", Role.EDITOR)
ROOT = Principal("root", Role.ADMIN)
TOKEN = Principal("admin token", Role.ADMIN, user=False)


@given(access=st.sampled_from(ACCESS_LEVELS))
def test_owners_and_admins_see_use_and_change(access: str) -> None:
    for caller in (ANN_EDITOR, ROOT, TOKEN):
        assert may_see(caller, "ann", access)
        assert may_use(caller, "ann", access)
        assert may_change(caller, "ann")


@pytest.mark.parametrize(
    ("access", "sees", "uses"),
    [("private", False, False), ("view", True, False), ("usable", True, True)],
)
def test_others_see_and_use_as_the_access_level_says(access: str, sees: bool, uses: bool) -> None:
    assert may_see(BOB, "ann", access) is sees
    assert may_use(BOB, "ann", access) is uses
    assert may_change(BOB, "ann") is False


def test_a_viewer_changes_not_even_their_own_audience() -> None:
    assert may_see(ANN_VIEWER, "ann", "private")
    assert not may_change(ANN_VIEWER, "ann")


def test_no_user_owns_what_the_admin_token_or_the_cli_made() -> None:
    for owner in ("admin token", "cli"):
        assert not may_change(BOB, owner)
        assert may_change(ROOT, owner)


@pytest.mark.parametrize("name", ["", "a b", "-x", "cli", "admin token", "Demo", "x" * 65])
def test_names_a_user_may_not_have(name: str) -> None:
    with pytest.raises(InvalidBatch):
        check_user_name(name)


def test_names_a_user_may_have() -> None:
    for name in ("ann", "ann.lee@example.com", "a-1_b+c"):
        assert check_user_name(name) == name
