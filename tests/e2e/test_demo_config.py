"""The demo config as a newcomer meets it: `kindred serve` with no config file, the admin
API the docs send them to open with the demo token, and a banner that says the published
demo credentials are in use."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from kindred.cli.serve import _demo_warning
from kindred.config import load_settings
from tests.e2e.conftest import CONFIG, KINDRED, free_port

pytestmark = pytest.mark.e2e

DEMO_ADMIN = {"authorization": "Bearer demo-admin-token"}


def _serve_demo(tmp_path: Path, *options: str) -> Iterator[tuple[str, Path]]:
    """`kindred serve OPTIONS` on the demo config (no --config, no KINDRED_CONFIG) with its
    data in tmp_path/data; its URL and the file its banner and log went to."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINDRED_")}
    port = free_port()
    output = tmp_path / "serve.out"
    command = [*KINDRED, "serve", *options, "--data-dir", str(tmp_path / "data")]
    with output.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
        yield url, output
    finally:
        process.terminate()
        process.wait(15)


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    yield from _serve_demo(tmp_path)


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("kindred serve exited")
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("kindred serve did not become healthy in 20 s")


def test_the_admin_api_answers_the_demo_token(demo_server: tuple[str, Path]) -> None:
    url, _ = demo_server
    listed = httpx.get(f"{url}/admin/v1/audiences", headers=DEMO_ADMIN)
    assert listed.status_code == 200, listed.text
    assert listed.json() == []
    created = httpx.post(
        f"{url}/admin/v1/audiences",
        headers=DEMO_ADMIN,
        json={
            "name": "Gold",
            "workspaces": [1],
            "criteria": {"attribute": "tier", "op": "equals", "value": "gold"},
        },
    )
    assert created.status_code == 201, created.text
    assert httpx.get(f"{url}/admin/v1/audiences").status_code == 401
    wrong = {"authorization": "Bearer not-the-demo-token"}
    # Neither a user's API key nor the admin token: unknown, as no credential.
    assert httpx.get(f"{url}/admin/v1/audiences", headers=wrong).status_code == 401


def test_the_banner_warns_that_demo_credentials_are_in_use(
    demo_server: tuple[str, Path],
) -> None:
    url, output = demo_server
    banner = output.read_text()
    assert "WARNING:  the demo config is in use" in banner
    assert f"admin:    {url}/admin/v1/  (Bearer demo-admin-token)" in banner


def test_another_config_gets_no_warning_and_no_token_printed() -> None:
    own = load_settings(CONFIG, env={})
    assert own.admin.token  # the e2e config has one
    assert _demo_warning(own, "http://127.0.0.1:1") == ""
    demo = load_settings(None, env={})
    assert "demo-admin-token" in _demo_warning(demo, "http://127.0.0.1:1")


@pytest.fixture
def demo_with_data(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    yield from _serve_demo(tmp_path, "--demo-data")


def _eventually(check: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_the_demo_data_gives_every_page_something_to_show(
    demo_with_data: tuple[str, Path], tmp_path: Path
) -> None:
    url, output = demo_with_data
    data = tmp_path / "data"
    audiences = httpx.get(f"{url}/admin/v1/audiences", headers=DEMO_ADMIN).json()
    assert {a["status"] for a in audiences} == {"active"}
    assert len(audiences) == 3
    for audience in audiences:
        members = httpx.get(
            f"{url}/admin/v1/audiences/{audience['id']}/members", headers=DEMO_ADMIN
        ).json()
        assert members["mpids"], audience["name"]
    calculated = httpx.get(f"{url}/admin/v1/calculated-attributes", headers=DEMO_ADMIN).json()
    assert {c["name"] for c in calculated if c["status"] == "active"} == {
        "plays_30d",
        "favorite_plan",
    }

    def status(name: str) -> str:
        listed = httpx.get(f"{url}/admin/v1/connections", headers=DEMO_ADMIN).json()
        return str(next(s["status"] for s in listed["status"] if s["name"] == name))

    _eventually(lambda: status("gold-members-to-crm") == "faulted", "the CRM connection faults")
    files = data / "demo-output"
    _eventually(lambda: any(files.glob("demo-files-*.jsonl")), "the file output is written")
    lines = "".join(p.read_text() for p in files.glob("demo-files-*.jsonl"))
    assert "audience_membership_change" in lines
    banner = output.read_text()
    assert "kindred profile get --identity customer_id=demo-0001" in banner
