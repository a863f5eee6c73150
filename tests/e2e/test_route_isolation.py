"""Every route, every wrong credential: one table of expected answers, built against the
route list of the application itself, so a route added without an entry fails the test.

Three accounts hold the same customer id; account 3 keeps one MPID space per workspace.
Each case sends a request aimed at a target tenant's data (its MPID, identities and path
ids) with a credential that must not reach it, and expects the table's status. Whatever
the answer, it must not carry the target's MPID or attribute values, and at the end the
targets' profiles are exactly as they were.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from kindred.api.app import create_app
from kindred.api.ui.routes import OPEN_PATHS
from kindred.bootstrap import build
from kindred.config import load_settings
from kindred.domain.users import Role, role_needed
from tests.e2e.conftest import KINDRED, Server, make_server

pytestmark = pytest.mark.e2e

CONFIG = Path(__file__).with_name("isolation-e2e.toml")
ADMIN = "isolation-admin-token"
CUSTOMER = "same-customer-everywhere"
OTHER_AUDIENCE = "https://reports.example.com"
TOKEN_TTL_S = 28800


@dataclass
class Tenant:
    account: int
    workspace: int
    server: tuple[str, str]
    web_key: str
    client: tuple[str, str]
    csv: tuple[str, str] | None
    mpid: int = 0
    # A data subject request of the tenant's, made when the targets are.
    request_id: str = ""

    @property
    def secret_value(self) -> str:
        return f"private-to-workspace-{self.workspace}"


ONE = Tenant(
    1,
    1,
    ("server-key-1", "server-secret-1"),
    "web-key-1",
    ("client-1", "client-secret-1"),
    ("csv-key-1", "csv-secret-1"),
)
TWO = Tenant(
    2,
    2,
    ("server-key-2", "server-secret-2"),
    "web-key-2",
    ("client-2", "client-secret-2"),
    ("csv-key-2", "csv-secret-2"),
)
THREE = Tenant(
    3, 3, ("server-key-3", "server-secret-3"), "web-key-3", ("client-3", "client-secret-3"), None
)
FOUR = Tenant(
    3,
    4,
    ("server-key-4", "server-secret-4"),
    "web-key-4",
    ("client-4", "client-secret-4"),
    ("csv-key-4", "csv-secret-4"),
)
TENANTS = (ONE, TWO, THREE, FOUR)

# --- the route table -------------------------------------------------------------------
# How each route is authenticated. A route missing here fails test_the_table_covers_every_route.
PLATFORM = "platform"
# Data subject requests: HTTP Basic as the Events API, but OpenDSR answers every credential
# it cannot accept 401 (reference §6).
DSR = "dsr"
BASIC, IDSYNC, WEB_KEY, BEARER, OAUTH, ADMIN_TOKEN, UI, OPEN = (
    "basic",
    "idsync",
    "web-key",
    "bearer",
    "oauth",
    "admin",
    "ui",
    "open",
)


_EXACT_KINDS = {
    **dict.fromkeys(
        ("/healthz", "/readyz", "/metrics", "/openapi.json", "/v3/discovery", *OPEN_PATHS), OPEN
    ),
    **dict.fromkeys(
        (
            "/v2/events",
            "/v2/bulkevents",
            "/v2/bulkevents/historical",
            "/v2/import/csv",
            "/v2/calculatedattributes",
            "/v2/bulkcalculatedattributes",
        ),
        BASIC,
    ),
    **dict.fromkeys(
        (
            "/v3/requests",
            "/v3/requests/{request_id}",
            "/v3/requests/{request_id}/results",
            "/v3/requests/{request_id}/receipt",
            "/v1/opengdpr_requests",
            "/v1/opengdpr_requests/{request_id}",
        ),
        DSR,
    ),
    "/oauth/token": OAUTH,
    # The audience estimator (AUD-7): a definition's estimate, posted or saved; named
    # here as well as by their family, so that they stay behind the admin token.
    **dict.fromkeys(
        ("/admin/v1/audiences/estimate", "/admin/v1/audiences/{audience_id}/estimate"),
        ADMIN_TOKEN,
    ),
    **dict.fromkeys(
        ("/v1/audiences", "/v1/workspace/{workspace_id}/audiences", "/v1/audiences/{audience_id}"),
        PLATFORM,
    ),
    **dict.fromkeys(
        (
            "/v3/JS/{api_key}/events",
            "/webevents/v3/JS/{api_key}/events",
            "/webevents/v1/identity/{api_key}/Alias",
            "/v1/identity/{api_key}/Alias",
            "/tags/JS/v2/{api_key}/config",
        ),
        WEB_KEY,
    ),
}
# Whole families: a route added under one of these is tried with every case at once.
_PREFIX_KINDS = (
    ("/admin/v1/", ADMIN_TOKEN),
    ("/ui", UI),
    ("/userprofile/v1/", BEARER),
    ("/v1/", IDSYNC),
    ("/identity/v1/", IDSYNC),
)


def route_kind(path: str) -> str | None:
    if path in _EXACT_KINDS:
        return _EXACT_KINDS[path]
    return next((kind for prefix, kind in _PREFIX_KINDS if path.startswith(prefix)), None)


CASES = (
    "none",
    "malformed",
    "wrong_secret",
    "other_account",
    "other_workspace",
    "tampered_token",
    "expired_token",
    "other_audience_token",
    "signed_out_cookie",
    # A user's admin API key: at an admin route, one whose role is below the route's (a
    # route every role may read gets a revoked key); elsewhere an admin's key, which is
    # no credential of any other API.
    "user_key",
)


def _all(status: int, **others: int) -> dict[str, int]:
    return {case: others.get(case, status) for case in CASES}


# The expected status of each case, by the route's kind. `other_account` and
# `other_workspace` send a valid credential of another tenant at the target's data: a write
# lands in the caller's own tenant (the targets are checked unchanged at the end), a read
# or change of the target's profile is answered as for an unknown one.
EXPECTED: dict[str, dict[str, int]] = {
    BASIC: _all(403, none=401, signed_out_cookie=401, other_account=202, other_workspace=202),
    DSR: _all(401, other_account=200, other_workspace=200),
    IDSYNC: _all(403, none=401, signed_out_cookie=401, other_account=200, other_workspace=200),
    WEB_KEY: _all(403, other_account=202, other_workspace=202),
    BEARER: _all(401, other_account=403, other_workspace=403),
    # The Platform API: another tenant's token is refused the target's account or
    # workspace, and another tenant's audience is answered as an unknown one.
    PLATFORM: _all(401, other_account=403, other_workspace=403),
    # A token request's credential is in its body: another tenant's is simply valid.
    OAUTH: _all(400, malformed=401, wrong_secret=401, other_account=200, other_workspace=200),
    # Any credential that is no user's key nor the admin token is unknown: 401. A key of a
    # role below the route's: 403 (see `expected`).
    ADMIN_TOKEN: _all(401),
    UI: _all(302),
    OPEN: _all(200),
}

# Routes whose answers differ from their kind's: (method, path) -> {case: status}.
EXCEPTIONS: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/ui/api/live"): _all(401),  # JSON for the page's script, not a redirect
    ("POST", "/ui/api/audiences/estimate"): _all(401),  # the builder's script, as above
    ("GET", "/ui/api/audiences/suggestions"): _all(401),
    ("POST", "/ui/login"): _all(401),  # no name and password in the form
    ("POST", "/v2/import/csv"): {"other_account": 200, "other_workspace": 200},
    ("POST", "/v2/calculatedattributes"): {"other_account": 404, "other_workspace": 404},
    ("POST", "/v2/bulkcalculatedattributes"): {"other_account": 404, "other_workspace": 404},
    ("POST", "/v1/{mpid}/modify"): {"other_account": 404, "other_workspace": 404},
    ("POST", "/identity/v1/{mpid}/modify"): {"other_account": 404, "other_workspace": 404},
    ("POST", "/v1/identity/{api_key}/Alias"): {"other_account": 404, "other_workspace": 404},
    ("POST", "/webevents/v1/identity/{api_key}/Alias"): {
        "other_account": 404,
        "other_workspace": 404,
    },
    ("GET", "/tags/JS/v2/{api_key}/config"): {"other_account": 200, "other_workspace": 200},
    ("DELETE", "/v1/audiences/{audience_id}"): {"other_account": 404, "other_workspace": 404},
    # Account 3's list for a credential of its workspace 4: workspace 4's audiences alone.
    ("GET", "/v1/audiences"): {"other_workspace": 200},
    # Data subject requests: a request lands in the caller's own workspace (and its
    # identity scope); another workspace's request id is answered as an unknown one.
    ("POST", "/v3/requests"): {"other_account": 201, "other_workspace": 201},
    ("POST", "/v1/opengdpr_requests"): {"other_account": 201, "other_workspace": 201},
    ("GET", "/v3/requests"): {"other_account": 200, "other_workspace": 200},
    **{
        (method, path): {"other_account": 404, "other_workspace": 404}
        for method, path in (
            ("GET", "/v3/requests/{request_id}"),
            ("DELETE", "/v3/requests/{request_id}"),
            ("GET", "/v3/requests/{request_id}/results"),
            ("GET", "/v3/requests/{request_id}/receipt"),
            ("GET", "/v1/opengdpr_requests/{request_id}"),
            ("DELETE", "/v1/opengdpr_requests/{request_id}"),
        )
    },
}


def expected(method: str, path: str, case: str) -> int:
    kind = route_kind(path)
    assert kind is not None
    if kind == ADMIN_TOKEN and case == "user_key" and role_needed(method, path) is not Role.VIEWER:
        return 403
    return EXCEPTIONS.get((method, path), {}).get(case, EXPECTED[kind][case])


@dataclass
class Credential:
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    web_key: str = "no-such-key"
    oauth: dict[str, str] = field(default_factory=dict)


def basic(key: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


@dataclass
class Keys:
    """Tokens and cookies the cases need, made once against the running server."""

    expired: str
    tampered: str
    other_audience: str
    foreign_two: str
    foreign_four: str
    signed_out: str
    forged_cookie: str
    # Users' admin API keys by role, and a revoked one.
    user_keys: dict[Role, str]
    revoked_key: str


def lesser_key(keys: Keys, needed: Role) -> str:
    """A key whose role is below `needed` (a revoked one when no role is)."""
    below = [r for r in Role if not r.covers(needed)]
    return keys.user_keys[max(below, key=lambda r: r.rank)] if below else keys.revoked_key


def credential(
    kind: str,
    case: str,
    keys: Keys,
    target: Tenant,
    *,
    csv: bool = False,
    needed: Role = Role.ADMIN,
) -> Credential:
    foreign = FOUR if target is THREE else TWO
    if case == "user_key":
        key = lesser_key(keys, needed) if kind == ADMIN_TOKEN else keys.user_keys[Role.ADMIN]
        return Credential(headers={"Authorization": f"Bearer {key}"})
    cookie = {"kindred_ui": keys.signed_out} if case == "signed_out_cookie" else {}
    token = {
        "tampered_token": keys.tampered,
        "expired_token": keys.expired,
        "other_audience_token": keys.other_audience,
    }.get(case)
    if token is not None:
        return Credential(headers={"Authorization": f"Bearer {token}"}, web_key="no-such-key")
    if case in ("none", "signed_out_cookie"):
        return Credential(cookies=cookie, oauth={"grant_type": "client_credentials"})
    if case == "malformed":
        return Credential(
            headers={"Authorization": "Basic !!not-base64", "x-mp-key": ""},
            cookies={"kindred_ui": "not-a-session"},
            web_key="%20",
            oauth={"grant_type": "client_credentials", "client_id": "", "client_secret": ""},
        )
    if case == "wrong_secret":
        secret_kind = {
            BEARER: f"Bearer {keys.tampered[:-4]}AAAA",
            PLATFORM: f"Bearer {keys.tampered[:-4]}AAAA",
            ADMIN_TOKEN: "Bearer wrong-token",
        }
        return Credential(
            headers={
                "Authorization": secret_kind.get(kind, basic(target.server[0], "wrong-secret"))
            },
            cookies={"kindred_ui": keys.forged_cookie},
            web_key=target.server[0],  # a server key is no web key
            oauth={
                "grant_type": "client_credentials",
                "client_id": target.client[0],
                "client_secret": "wrong",
            },
        )
    # A valid credential of the foreign tenant, aimed at the target's data.
    foreign_token = keys.foreign_four if foreign is FOUR else keys.foreign_two
    by_kind = {
        BASIC: {"Authorization": basic(*(foreign.csv if csv and foreign.csv else foreign.server))},
        DSR: {"Authorization": basic(*foreign.server)},
        IDSYNC: {"x-mp-key": foreign.web_key},
        BEARER: {"Authorization": f"Bearer {foreign_token}"},
        PLATFORM: {"Authorization": f"Bearer {foreign_token}"},
        ADMIN_TOKEN: {"Authorization": f"Bearer {foreign_token}"},
        UI: {"Authorization": basic(*foreign.server)},
    }
    return Credential(
        headers=by_kind.get(kind, {}),
        web_key=foreign.web_key,
        oauth={
            "grant_type": "client_credentials",
            "client_id": foreign.client[0],
            "client_secret": foreign.client[1],
        },
    )


# --- what each route is sent ---------------------------------------------------------


def target_batch(target: Tenant) -> dict[str, Any]:
    return {
        "environment": "development",
        "mpid": str(target.mpid),
        "user_identities": {"customer_id": CUSTOMER},
        "user_attributes": {"written_by": "an intruder"},
        "events": [
            {
                "event_type": "custom_event",
                "data": {"event_name": "intrusion", "custom_event_type": "other"},
            }
        ],
    }


def dsr_request(target: Tenant, kind: str = "erasure") -> dict[str, Any]:
    """An OpenDSR request about the target's profile, by its MPID."""
    mpid = {"mpid": {"value": str(target.mpid), "encoding": "raw"}}
    return {
        "regulation": "gdpr",
        "subject_request_id": str(uuid.uuid4()),
        "subject_request_type": kind,
        "submitted_time": "2023-11-14T22:13:20Z",
        "subject_identities": {},
        "extensions": {"opendsr.mparticle.com": {"subject_identities": mpid}},
    }


def url_for(path: str, target: Tenant, cred: Credential) -> str:
    values = {
        "api_key": cred.web_key,
        "mpid": str(target.mpid),
        "request_id": target.request_id,
        "orgId": "1",
        "accountId": str(target.account),
        "workspaceId": str(target.workspace),
        "workspace_id": str(target.workspace),
        "name": "hook",
        "kind": "webhook",
        "action": "activate",
    }
    url = re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "1"), path)
    if path.startswith("/userprofile/"):
        url += "?fields=user_identities,user_attributes"
    if path.startswith("/v1/audiences"):
        url += f"?accountId={target.account}"
    return url


def body_for(method: str, path: str, target: Tenant, cred: Credential) -> Any:
    """A body the route would accept from the right caller, aimed at the target."""
    hours_ago = int(time.time() * 1000) - 100 * 3600 * 1000
    historical = {**target_batch(target), "timestamp_unixtime_ms": hours_ago}
    historical["events"] = [
        {
            **historical["events"][0],
            "data": {**historical["events"][0]["data"], "timestamp_unixtime_ms": hours_ago},
        }
    ]
    seed = {"mpid": str(target.mpid), "calculated_attributes": {"workspace": []}}
    bodies: dict[str, Any] = {
        "/v2/events": target_batch(target),
        "/v2/bulkevents": [target_batch(target)],
        "/v2/bulkevents/historical": [historical],
        "/v2/import/csv": f"customer_id,written_by\n{CUSTOMER},an intruder\n".encode(),
        "/v2/calculatedattributes": seed,
        "/v2/bulkcalculatedattributes": [seed],
        "/oauth/token": cred.oauth,
        "/v3/requests": dsr_request(target),
        "/v1/opengdpr_requests": {
            "subject_request_id": str(uuid.uuid4()),
            "subject_request_type": "access",
            "submitted_time": "2023-11-14T22:13:20Z",
            "extensions": {"opendsr.mparticle.com": {"mpids": [str(target.mpid)]}},
        },
    }
    change = {"identity_type": "email", "old_value": None, "new_value": "x@example.com"}
    mpids = {"source_mpid": str(target.mpid), "destination_mpid": str(target.mpid + 1)}
    identity = {"type": "customer_id", "value": CUSTOMER}
    families: tuple[tuple[bool, Any], ...] = (
        (path.endswith("/events"), target_batch(target)),
        (path.endswith("/modify"), {"identity_changes": [change]}),
        (
            path.endswith("/Alias"),
            {"data": {**mpids, "start_unixtime_ms": 1, "end_unixtime_ms": 2}},
        ),
        (
            path.startswith(("/v1/", "/identity/v1/")),
            {"environment": "development", "known_identities": {"customerid": CUSTOMER}},
        ),
        ("/resolve/" in path, {"environment_type": "development", "identity": identity}),
        (method in ("POST", "PUT") and path.startswith("/admin/"), {}),
    )
    return bodies.get(path, next((body for matches, body in families if matches), None))


def request_for(method: str, path: str, target: Tenant, cred: Credential) -> dict[str, Any]:
    request: dict[str, Any] = {
        "method": method,
        "url": url_for(path, target, cred),
        "headers": dict(cred.headers),
    }
    body = body_for(method, path, target, cred)
    if isinstance(body, bytes):
        request["content"] = body
    elif body is not None:
        request["json"] = body
    return request


# --- the server and its keys -----------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("isolation")
    clock = tmp / "clock"
    clock.write_text("0")
    srv = make_server(tmp, clock_file=clock)
    srv.config = CONFIG
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def token(server: Server, client: tuple[str, str], audience: str | None = None) -> str:
    body = {"grant_type": "client_credentials", "client_id": client[0], "client_secret": client[1]}
    if audience:
        body["audience"] = audience
    answer = httpx.post(f"{server.url}/oauth/token", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def sign_in(server: Server) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=30)
    answer = client.post("/ui/login", data={"name": "tester", "password": "tester-password"})
    assert answer.status_code in (302, 303), answer.text
    return client


@pytest.fixture(scope="module")
def keys(server: Server) -> Keys:
    clock = server.env["KINDRED_CLOCK_FILE"]
    expired = token(server, ONE.client)
    Path(clock).write_text(str((TOKEN_TTL_S + 60) * 1000))
    time.sleep(0.05)
    valid = token(server, ONE.client)
    header, payload, signature = valid.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = TWO.client[0]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    user_keys = {role: user_key(server, f"iso-{role.value}", role.value) for role in Role}
    revoked = user_key(server, "iso-revoked", "admin")
    server.cli("users", "key", "revoke", "iso-revoked", revoked.split("_")[1])
    browser = sign_in(server)
    try:
        cookie = browser.cookies["kindred_ui"]
        csrf_page = browser.get("/ui/profiles")
        assert csrf_page.status_code == 200
        csrf = csrf_page.text.split('name="csrf" value="')[1].split('"')[0]
        out = browser.post("/ui/logout", data={"csrf": csrf})
        assert out.status_code in (302, 303), out.text
    finally:
        browser.close()
    return Keys(
        expired=expired,
        tampered=f"{header}.{forged}.{signature}",
        other_audience=token(server, ONE.client, OTHER_AUDIENCE),
        foreign_two=token(server, TWO.client),
        foreign_four=token(server, FOUR.client),
        signed_out=cookie,
        forged_cookie=cookie[:-6] + ("AAAAAA" if not cookie.endswith("AAAAAA") else "BBBBBB"),
        user_keys=user_keys,
        revoked_key=revoked,
    )


def user_key(server: Server, name: str, role: str) -> str:
    """A new store user of `role` (`kindred users add`) and a key of theirs."""
    added = subprocess.run(
        [
            *KINDRED,
            *("users", "add", name, "--role", role, "--password-stdin"),
            *("--config", str(server.config), "--data-dir", str(server.data_dir)),
        ],
        env=server.env,
        input="isolation-password\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    made = server.cli("users", "key", "create", name)
    return str(json.loads(made.stdout)["key"])


@pytest.fixture(scope="module")
def targets(server: Server) -> dict[int, dict[str, Any]]:
    """Each tenant's profile of CUSTOMER, with an attribute only that tenant may see."""
    for tenant in TENANTS:
        batch = {
            "environment": "development",
            "user_identities": {"customer_id": CUSTOMER},
            "user_attributes": {"private": tenant.secret_value},
        }
        answer = httpx.post(f"{server.url}/v2/events", json=batch, auth=tenant.server, timeout=30)
        assert answer.status_code == 202, answer.text
    for tenant in TENANTS:
        found = httpx.post(
            f"{server.url}/v1/identify",
            json={"environment": "development", "known_identities": {"customerid": CUSTOMER}},
            headers={"x-mp-key": tenant.web_key},
            timeout=30,
        )
        assert found.status_code == 200, found.text
        tenant.mpid = int(found.json()["mpid"])
        made = httpx.post(
            f"{server.url}/v3/requests",
            json=dsr_request(tenant, "portability"),
            auth=tenant.server,
            timeout=30,
        )
        assert made.status_code == 201, made.text
        tenant.request_id = made.json()["subject_request_id"]
    assert len({t.mpid for t in TENANTS}) == 4
    return {t.workspace: stored(server, t) for t in TENANTS}


def stored(server: Server, tenant: Tenant) -> dict[str, Any]:
    profile = server.profile(mpid=str(tenant.mpid))
    assert profile is not None
    return profile


def app_routes(tmp_path: Path) -> list[tuple[str, str]]:
    container = build(load_settings(CONFIG, data_dir=str(tmp_path), env={}))
    app = create_app(container, manage_lifecycle=False)
    routes = set(app.endpoints())
    for route in app.fallback_routes():
        routes |= {(m, route.path) for m in route.methods - {"HEAD"}}
    container.store.close()
    return sorted(routes)


def test_the_table_covers_every_route(tmp_path: Path) -> None:
    routes = app_routes(tmp_path)
    unknown = [r for r in routes if route_kind(r[1]) is None]
    assert not unknown, f"routes with no entry in the isolation table: {unknown}"
    assert len(routes) > 60


def test_every_route_refuses_every_wrong_credential(
    server: Server, keys: Keys, targets: dict[int, dict[str, Any]], tmp_path: Path
) -> None:
    wrong: list[str] = []
    leaks: list[str] = []
    for method, path in app_routes(tmp_path):
        kind = route_kind(path)
        assert kind is not None
        for case in CASES:
            target = THREE if case == "other_workspace" else ONE
            needed = role_needed(method, path)
            cred = credential(kind, case, keys, target, csv=path == "/v2/import/csv", needed=needed)
            request = request_for(method, path, target, cred)
            with httpx.Client(base_url=server.url, cookies=cred.cookies, timeout=30) as client:
                answer = client.request(**request)
            want = expected(method, path, case)
            if answer.status_code != want:
                wrong.append(f"{method} {path} {case}: {answer.status_code}, not {want}")
            sent = json.dumps(request, default=str)
            # What the caller sent may come back (a 404 naming the MPID asked for); what
            # it did not send must not.
            for secret in (str(target.mpid), target.secret_value):
                if secret in answer.text and secret not in sent:
                    leaks.append(f"{method} {path} {case}: the answer holds {secret}")
    assert not wrong, "\n".join(wrong)
    assert not leaks, "\n".join(leaks)
    # Nothing sent at the targets with a wrong or foreign credential changed them.
    for tenant in (ONE, THREE):
        assert stored(server, tenant) == targets[tenant.workspace], tenant


@pytest.mark.usefixtures("targets")
def test_the_same_customer_is_a_profile_of_its_own_in_each_tenant(server: Server) -> None:
    for tenant in TENANTS:
        bearer = {"Authorization": f"Bearer {token(server, tenant.client)}"}
        identity = {"type": "customer_id", "value": CUSTOMER}
        answer = httpx.post(
            f"{server.url}/userprofile/v1/resolve/1/{tenant.account}/{tenant.workspace}"
            "?fields=user_identities,user_attributes",
            json={"environment_type": "development", "identity": identity},
            headers=bearer,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        profile = answer.json()
        assert int(profile["mpid"]) == tenant.mpid
        assert profile["user_attributes"]["private"] == tenant.secret_value
        others = {t.secret_value for t in TENANTS} - {tenant.secret_value}
        assert not any(value in answer.text for value in others)


def test_a_platform_credential_sees_only_audiences_within_its_workspaces(server: Server) -> None:
    """client-4 covers workspace 4 of account 3: an audience of workspaces 3 and 4 is none
    of its own (its size counts workspace 3, its deletion would end it there), one of
    workspace 4 alone is."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    made = {}
    for name, workspaces in (("spans three and four", [3, 4]), ("four alone", [4])):
        body = {
            "name": name,
            "workspaces": workspaces,
            "criteria": {"attribute": "tier", "op": "equals", "value": "gold"},
        }
        answer = httpx.post(f"{server.url}/admin/v1/audiences", json=body, headers=admin)
        assert answer.status_code == 201, answer.text
        made[name] = answer.json()["id"]
    bearer = {"Authorization": f"Bearer {token(server, FOUR.client)}"}
    for path in ("/v1/audiences?accountId=3", "/v1/workspace/4/audiences"):
        listed = httpx.get(f"{server.url}{path}", headers=bearer, timeout=30)
        assert listed.status_code == 200, listed.text
        ids = [a["id"] for a in listed.json()["data"]]
        assert made["four alone"] in ids
        assert made["spans three and four"] not in ids
    spanning = made["spans three and four"]
    refused = httpx.delete(f"{server.url}/v1/audiences/{spanning}", headers=bearer, timeout=30)
    assert refused.status_code == 404
    kept = httpx.get(f"{server.url}/admin/v1/audiences/{spanning}", headers=admin, timeout=30)
    assert kept.status_code == 200
    gone = httpx.delete(
        f"{server.url}/v1/audiences/{made['four alone']}", headers=bearer, timeout=30
    )
    assert gone.status_code == 204
