"""Screenshots of each web UI page, from the demo data, into docs/screenshots/.

Starts Kindred on a fresh data directory with the demo config and demo data (its audiences,
calculated attributes, and connections to JSON-lines files and to a webhook nobody answers,
so that a page shows a fault) and sends a few batches over HTTP (a size chart that steps
up, a quarantined batch, fresh development batches), then signs in with Debian's Chromium
(driven by Playwright) and saves one PNG per page.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Needs scripts/setup.sh and scripts/setup-browser.sh (Chromium) done.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
KINDRED = [sys.executable, "-m", "kindred.cli"]
CHROMIUM = "/usr/bin/chromium"
AUTH = ("demo-server-key", "demo-server-secret")
# The demo audience the audience page shows: the first the demo makes.
AUDIENCE_ID = 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KINDRED_")}


def _serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [*KINDRED, "serve", "--demo-data", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=(data_dir / "server.log").open("ab"),
        env=_env(),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.terminate()
    raise SystemExit("kindred serve did not start; see server.log")


def _traffic(base: str) -> None:
    """A few users reach the gold loyalty tier over some seconds (the size chart steps up),
    a batch the web input cannot read (quarantined), and fresh development batches for the
    Live Stream."""
    for n in range(0, 12, 2):
        batch = {
            "environment": "development",
            "user_identities": {"customerid": f"demo-{n:04d}"},
            "user_attributes": {"loyalty_tier": "gold"},
            "events": [
                {
                    "event_type": "custom_event",
                    "data": {"event_name": "Upgrade", "custom_event_type": "transaction"},
                },
                {"event_type": "screen_view", "data": {"screen_name": "Plans"}},
            ],
        }
        httpx.post(f"{base}/v2/events", json=batch, auth=AUTH, timeout=10).raise_for_status()
        time.sleep(0.7)
    bad = b'{"events":[{"event_type":"custom_event","data":{"event_name":7}}]}'
    httpx.post(f"{base}/v3/JS/demo-web-key/events", content=bad, timeout=10).raise_for_status()
    httpx.post(
        f"{base}/v2/events",
        auth=AUTH,
        timeout=10,
        json={
            "environment": "development",
            "user_identities": {"customerid": "demo-0001"},
            "events": [{"event_type": "custom_event", "data": {"event_name": "Rate"}}],
        },
    ).raise_for_status()


def _shoot(page: Page, name: str, out: Path, *, full_page: bool = True) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / f"{name}.png"), full_page=full_page)
    print(f"saved {out / name}.png")


def _pages(base: str, audience_id: int, out: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--no-first-run",
            ],
        )
        page = browser.new_page(base_url=base, viewport={"width": 1280, "height": 800})
        page.goto("/ui/login")
        page.get_by_label("Name").fill("demo")
        _shoot(page, "login", out)
        page.get_by_label("Password").fill("demo-password")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/ui/profiles")
        page.get_by_label("Value").fill("demo-0000")
        page.get_by_role("button", name="Search").click()
        page.wait_for_url("**/ui/profiles/*")
        _shoot(page, "profile", out)
        page.goto("/ui/live")
        page.locator("li.item.quarantined details").first.locator("summary").click()
        _shoot(page, "live-stream", out, full_page=False)
        page.goto("/ui/audiences")
        _shoot(page, "audiences", out)
        page.goto(f"/ui/audiences/{audience_id}")
        _shoot(page, "audience", out)
        for tab in ("build", "ab-test", "connect", "download", "history"):
            page.goto(f"/ui/audiences/{audience_id}/{tab}")
            _shoot(page, f"audience-{tab}", out)
        _forwarding_and_calculated(page, out)
        page.goto(f"/ui/audiences/{audience_id}/edit")
        expect(page.locator("#est-total")).not_to_have_text("—")
        _shoot(page, "builder", out)
        browser.close()


def _forwarding_and_calculated(page: Page, out: Path) -> None:
    """The calculated attributes (the list, the first one's draft as a form), the
    connections (the demo's faulted webhook among them), one connection's page and the
    outputs."""
    page.goto("/ui/calculated")
    _shoot(page, "calculated-attributes", out)
    page.get_by_role("table", name="Calculated attributes").get_by_role("link").first.click()
    page.get_by_role("link", name="Edit draft").click()
    _shoot(page, "calculated-attribute", out)
    page.goto("/ui/connections")
    _shoot(page, "connections", out)
    page.get_by_role("table", name="Connections").get_by_role("link").first.click()
    _shoot(page, "connection", out)
    page.goto("/ui/outputs")
    _shoot(page, "outputs", out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kindred-shots-") as tmp:
        data_dir = Path(tmp)
        port = _free_port()
        server = _serve(data_dir, port)
        try:
            base = f"http://127.0.0.1:{port}"
            _traffic(base)
            time.sleep(3)  # the demo's webhook connection faults meanwhile
            _pages(base, AUDIENCE_ID, out)
        finally:
            server.terminate()
            server.wait(15)


if __name__ == "__main__":
    main()
