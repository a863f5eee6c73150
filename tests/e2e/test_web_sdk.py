"""`kindred serve` over HTTPS, and the real mParticle web SDK against it in headless Chromium.

The SDK (`@mparticle/web-sdk` from npm, pinned in web/package.json) runs in a page served
over HTTPS from 127.0.0.1 and talks to a Kindred server on another port, also over HTTPS
with the same self-signed certificate (the SDK always uses https for config and alias). It
identifies, logs a page view and an event, sets a user attribute, logs in with a customer
id, logs out, logs an event as the new anonymous user and aliases that user into the known
one; each step is checked in the stored profiles and the event log. It runs once per way of
pointing the SDK at a host: the per-URL settings and the single `domain` setting.

The browser part needs Debian's chromium and `npm ci` in tests/e2e/web, both done by
scripts/setup-browser.sh (scripts/test.sh runs it). Without them it fails, so that a
missing install step cannot pass unseen.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from kindred.bootstrap import build
from kindred.config import load_settings
from tests.e2e.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CONFIG,
    KINDRED,
    Server,
    Tls,
    free_port,
    make_server,
    self_signed_tls,
)

pytestmark = pytest.mark.e2e

WEB = Path(__file__).with_name("web")
SDK = WEB / "node_modules" / "@mparticle" / "web-sdk" / "dist" / "mparticle.js"
WEB_KEY = "web-key"  # the web input of kindred-e2e.toml
T = TypeVar("T")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return self_signed_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_server(tmp_path: Path, tls: Tls) -> Iterator[Server]:
    srv = make_server(tmp_path, tls=tls)
    srv.start()
    yield srv
    srv.stop()


def _batch(customer_id: str) -> dict[str, Any]:
    return {
        "environment": "development",
        "user_identities": {"customerid": customer_id},
        "user_attributes": {"tier": "silver"},
        "events": [{"event_type": "custom_event", "data": {"event_name": "Play"}}],
    }


# --- kindred serve --tls-cert --tls-key ----------------------------------------------------


def test_serve_speaks_https_with_a_certificate(https_server: Server, tls: Tls) -> None:
    assert https_server.url.startswith("https://127.0.0.1:")
    answer = httpx.post(
        f"{https_server.url}/v2/events",
        json=_batch("tls-1"),
        auth=("server-key", "server-secret"),
        verify=tls.context(),
        timeout=10,
    )
    assert answer.status_code == 202
    profile = https_server.profile(identity="customer_id=tls-1")
    assert profile is not None
    assert profile["workspaces"]["1"]["attributes"]["tier"]["value"] == "silver"
    # Only TLS on that port: a plain-HTTP request gets no HTTP answer.
    with pytest.raises(httpx.TransportError):
        httpx.get(https_server.url.replace("https://", "http://") + "/healthz", timeout=2)


def test_serve_https_with_workers(tmp_path: Path, tls: Tls) -> None:
    port = free_port()
    env = make_server(tmp_path).env
    command = [
        *KINDRED,
        "serve",
        "--config",
        str(CONFIG),
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        str(port),
        "--workers",
        "2",
        "--tls-cert",
        str(tls.cert),
        "--tls-key",
        str(tls.key),
    ]
    url = f"https://127.0.0.1:{port}"
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == f"Kindred listening on {url}"

            def healthy() -> bool:
                try:
                    return httpx.get(f"{url}/healthz", verify=tls.context(), timeout=1).is_success
                except httpx.TransportError:
                    return False

            _until(healthy, "the HTTPS workers to answer", timeout=30)
            answer = httpx.post(
                f"{url}/v2/events",
                json=_batch("tls-2"),
                auth=("server-key", "server-secret"),
                verify=tls.context(),
                timeout=10,
            )
            assert answer.status_code == 202
        finally:
            process.terminate()
            process.wait(30)


def test_tls_options_go_together(tmp_path: Path, tls: Tls) -> None:
    result = subprocess.run(
        [*KINDRED, "serve", "--config", str(CONFIG), "--tls-cert", str(tls.cert)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--tls-cert and --tls-key go together" in result.stderr
    # A key that is not the certificate's fails at start, naming both files.
    other = self_signed_tls(tmp_path / "other")
    result = subprocess.run(
        [
            *KINDRED,
            "serve",
            "--config",
            str(CONFIG),
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            str(free_port()),
            "--tls-cert",
            str(tls.cert),
            "--tls-key",
            str(other.key),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"cannot load {tls.cert} with {other.key}" in result.stderr


# --- the web SDK in Chromium ---------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(tls: Tls) -> Iterator[str]:
    """tests/e2e/web over HTTPS on 127.0.0.1: the page that loads the SDK."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(WEB)))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert, tls.key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    missing = [str(p) for p in (CHROMIUM, SDK) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run scripts/setup-browser.sh")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        yield chromium
        chromium.close()


def _sdk_config(style: str, server: Server) -> dict[str, Any]:
    host = f"127.0.0.1:{server.port}"
    config: dict[str, Any] = {"isDevelopmentMode": True, "logLevel": "warning"}
    if style == "domain":
        # Rewritten by the SDK to {domain}/webevents/v3/JS/, /identity/v1/,
        # /webevents/v1/identity/ and /tags/JS/v2/.
        config["domain"] = host
    else:
        # mParticle's own paths where Kindred has them, the first-party ones elsewhere.
        config |= {
            "identityUrl": f"{host}/v1/",
            "v3SecureServiceUrl": f"{host}/v3/JS/",
            "aliasUrl": f"{host}/webevents/v1/identity/",
            "configUrl": f"{host}/tags/JS/v2/",
        }
    return config


_INIT = """async ([key, config]) => {
  const result = await new Promise((resolve) => {
    config.identityCallback = resolve;
    mParticle.init(key, config);
  });
  return {httpCode: result.httpCode, mpid: result.getUser() && result.getUser().getMPID(),
          deviceId: mParticle.getDeviceId()};
}"""

_BROWSE = """async () => {
  mParticle.logPageView('Home', {section: 'start'});
  mParticle.logEvent('Play', mParticle.EventType.Navigation, {song: 'So What', length: 562});
  mParticle.Identity.getCurrentUser().setUserAttribute('tier', 'gold');
  mParticle.upload();
  await kindredSettled();
}"""

_IDENTITY = """async ([method, request]) => {
  const result = await new Promise((resolve) => mParticle.Identity[method](request, resolve));
  const user = result.getUser(), previous = result.getPreviousUser();
  mParticle.upload();
  await kindredSettled();
  return {httpCode: result.httpCode, mpid: user && user.getMPID(),
          previous: previous && previous.getMPID()};
}"""

_LOG_EVENT = """async (name) => {
  mParticle.logEvent(name, mParticle.EventType.Other, {});
  mParticle.upload();
  await kindredSettled();
}"""

_ALIAS = """async ([source, destination]) => {
  const user = (mpid) => mParticle.Identity.getUsers().find((u) => u.getMPID() === mpid);
  const request = mParticle.Identity.createAliasRequest(user(source), user(destination));
  const result = await new Promise((resolve) => mParticle.Identity.aliasUsers(request, resolve));
  await kindredSettled();
  return {httpCode: result.httpCode, message: result.message || null,
          source: request.sourceMpid, destination: request.destinationMpid,
          start: request.startTime, end: request.endTime};
}"""


@pytest.mark.parametrize("style", ["urls", "domain"])
def test_web_sdk_against_kindred(
    style: str, browser: Browser, site: str, https_server: Server
) -> None:
    server = https_server
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    try:
        page.goto(f"{site}/index.html")
        _run_flow(page, style, server)
        # Nothing refused on the way (a CORS or TLS failure shows up here first).
        assert not [line for line in console if line.startswith("error")], console
    except BaseException:
        requests = page.evaluate("window.kindredRequests || []")
        print("requests:", json.dumps(requests, indent=1))
        print("console:", "\n".join(console))
        raise
    finally:
        context.close()


def _run_flow(page: Page, style: str, server: Server) -> None:
    # Identify: an anonymous user, known by its device only.
    identified = page.evaluate(_INIT, [WEB_KEY, _sdk_config(style, server)])
    assert identified["httpCode"] == 200, identified
    anonymous = identified["mpid"]
    device_id = identified["deviceId"]
    assert anonymous
    assert anonymous != "0"

    # A page view, an event and a user attribute, flushed.
    page.evaluate(_BROWSE)
    profile = server.profile(mpid=anonymous)
    assert profile is not None
    workspace = profile["workspaces"]["1"]
    assert workspace["attributes"]["tier"]["value"] == "gold"
    assert workspace["attributes"]["tier"]["source"] == "web"
    assert device_id in workspace["devices"]
    assert workspace["devices"][device_id]["identities"]["device_application_stamp"] == device_id
    events = _logged_events(server, anonymous)
    assert ("screen_view", "Home") in events
    assert ("custom_event", "Play") in events

    # Login with a customer id: the anonymous profile becomes the known one (default strategy).
    login = {"userIdentities": {"customerid": "web-c-1", "email": "web-1@example.com"}}
    logged_in = page.evaluate(_IDENTITY, ["login", login])
    assert logged_in["httpCode"] == 200, logged_in
    assert logged_in["mpid"] == anonymous
    known = server.profile(identity="customer_id=web-c-1")
    assert known is not None
    assert known["mpid"] == anonymous
    assert known["user_identities"]["email"]["value"] == "web-1@example.com"
    assert known["workspaces"]["1"]["attributes"]["tier"]["value"] == "gold"

    # Logout: a new anonymous user on the same device, which gets its own profile.
    logged_out = page.evaluate(_IDENTITY, ["logout", {}])
    assert logged_out["httpCode"] == 200, logged_out
    guest = logged_out["mpid"]
    assert guest
    assert guest != anonymous
    assert logged_out["previous"] == anonymous
    page.evaluate(_LOG_EVENT, "Browse")
    guest_profile = server.profile(mpid=guest)
    assert guest_profile is not None
    assert "customer_id" not in guest_profile.get("user_identities", {})
    assert ("custom_event", "Browse") in _logged_events(server, guest)

    # Alias the guest into the known user: the guest's data moves onto the known profile.
    aliased = page.evaluate(_ALIAS, [guest, anonymous])
    assert aliased["source"] == guest
    assert aliased["destination"] == anonymous
    assert aliased["httpCode"] in (200, 202), aliased
    _check_alias(server, source=guest, destination=anonymous)

    # The SDK reached Kindred at the paths its configuration asks for, and only there.
    requests = page.evaluate("window.kindredRequests")
    paths = {_path(r["url"]) for r in requests}
    prefix = {"domain": ("/identity/v1/", "/webevents/v3/JS/"), "urls": ("/v1/", "/v3/JS/")}[style]
    assert f"{prefix[0]}identify" in paths
    assert f"{prefix[0]}login" in paths
    assert f"{prefix[0]}logout" in paths
    assert f"{prefix[1]}{WEB_KEY}/events" in paths
    assert f"/tags/JS/v2/{WEB_KEY}/config" in paths
    assert f"/webevents/v1/identity/{WEB_KEY}/Alias" in paths
    assert all(r["url"].startswith(f"https://127.0.0.1:{server.port}/") for r in requests)
    assert all(isinstance(r["status"], int) and r["status"] < 300 for r in requests), requests


def _check_alias(server: Server, *, source: str, destination: str) -> None:
    """The source is left as a stub pointing at the destination, its logged batches moved."""
    stub = server.profile(mpid=source)
    assert stub is not None
    assert str(stub["merged_into"]) == destination
    assert not stub.get("user_identities")
    assert not stub.get("workspaces")
    assert _logged_events(server, source) == []
    assert ("custom_event", "Browse") in _logged_events(server, destination)
    known = server.profile(identity="customer_id=web-c-1")
    assert known is not None
    assert known["mpid"] == destination
    assert known["workspaces"]["1"]["attributes"]["tier"]["value"] == "gold"


def _path(url: str) -> str:
    return httpx.URL(url).path


def _logged_events(server: Server, mpid: str) -> list[tuple[str, str | None]]:
    """(event_type, event or screen name) of every batch the event log holds for `mpid`."""
    settings = load_settings(str(server.config), data_dir=str(server.data_dir), env=server.env)
    store = build(settings).store
    try:
        entries = store.log_for_profile(int(mpid), 200)
    finally:
        store.close()
    found = []
    for entry in entries:
        for event in json.loads(entry.body).get("events") or []:
            data = event.get("data") or {}
            found.append((event["event_type"], data.get("event_name") or data.get("screen_name")))
    return found


def _until(check: Callable[[], T], what: str, timeout: float = 10) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
