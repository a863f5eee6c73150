"""Screenshots of each web UI page, from the demo data, into docs/screenshots/.

Starts Kindred on a fresh data directory with the demo config and demo data, adds a few
audiences, connects the first to two outputs (JSON-lines files, and a webhook nobody answers,
so that the page shows a fault) and sends a few batches over HTTP (so that the pages have
something to show), then signs in with Debian's Chromium (driven by Playwright) and saves
one PNG per page.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Needs scripts/setup.sh and scripts/setup-browser.sh (Chromium) done.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
KINDRED = [sys.executable, "-m", "kindred.cli"]
CHROMIUM = "/usr/bin/chromium"
AUTH = ("demo-server-key", "demo-server-secret")
AUDIENCES: list[dict[str, Any]] = [
    {
        "name": "Gold members",
        "tags": ["loyalty", "gold"],
        "criteria": {"attribute": "tier", "op": "equals", "value": "gold"},
    },
    {
        "name": "Jazz fans open to marketing",
        "external_name": "jazz-marketing",
        "tags": ["music", "consent"],
        "criteria": {
            "and": [
                {"attribute": "favorite_genres", "op": "includes", "value": "jazz"},
                {"consent": "gdpr", "purpose": "marketing", "state": "consented"},
                {"exclude": {"attribute": "$City", "op": "equals", "value": "Oslo"}},
            ]
        },
    },
    {
        "name": "Lisbon and Porto",
        "tags": ["city"],
        "criteria": {
            "or": [
                {"attribute": "$City", "op": "equals", "value": "Lisbon"},
                {"attribute": "$City", "op": "equals", "value": "Porto"},
            ]
        },
    },
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [*KINDRED, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
        env=_env(),
    )
    return done.stdout


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KINDRED_")}


def _prepare(data_dir: Path) -> list[int]:
    """Demo data and the audiences, activated (the server's backfill fills them)."""
    _cli(data_dir, "demo")
    ids = []
    for audience in AUDIENCES:
        path = data_dir / "audience.json"
        path.write_text(json.dumps({"workspaces": [1], **audience}))
        made = json.loads(_cli(data_dir, "audiences", "create", str(path)))
        _cli(data_dir, "audiences", "activate", str(made["id"]))
        ids.append(int(made["id"]))
    return ids


def _forwarding_config(data_dir: Path, audience_id: int) -> Path:
    """The demo config with the audience connected to a files output and to a webhook on a
    port where nothing listens (it faults after a few tries)."""
    demo = (ROOT / "src" / "kindred" / "demo" / "kindred.toml").read_text()
    config = data_dir / "kindred.toml"
    config.write_text(
        demo
        + f"""
[forwarding.retry]
base_s = 0.2
max_delay_s = 0.5
max_attempts = 3

[[outputs]]
name = "crm-webhook"
kind = "webhook"
url = "http://127.0.0.1:{_free_port()}/audiences"

[[outputs]]
name = "archive"
kind = "jsonl"
directory = "{data_dir / "archive"}"

[[audience_connections]]
name = "gold-to-archive"
audience_id = {audience_id}
output = "archive"
identity_types = ["customer_id"]

[[audience_connections]]
name = "gold-to-crm"
audience_id = {audience_id}
output = "crm-webhook"
identity_types = ["customer_id", "email"]
"""
    )
    return config


def _serve(data_dir: Path, port: int, config: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [
            *KINDRED,
            "serve",
            *("--config", str(config), "--data-dir", str(data_dir), "--port", str(port)),
        ],
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
    """A few users turn gold over some seconds (the size chart steps up), a batch the web
    input cannot read (quarantined), and fresh development batches for the Live Stream."""
    for n in range(0, 12, 2):
        batch = {
            "environment": "development",
            "user_identities": {"customerid": f"demo-{n:04d}"},
            "user_attributes": {"tier": "gold"},
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
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kindred-shots-") as tmp:
        data_dir = Path(tmp)
        ids = _prepare(data_dir)
        port = _free_port()
        server = _serve(data_dir, port, _forwarding_config(data_dir, ids[0]))
        try:
            time.sleep(3)  # the backfill of the activated audiences
            base = f"http://127.0.0.1:{port}"
            _traffic(base)
            time.sleep(1)
            _pages(base, ids[0], out)
        finally:
            server.terminate()
            server.wait(15)


if __name__ == "__main__":
    main()
