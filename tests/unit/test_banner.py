"""The start banner: the store URL without its password, and the inputs the config has."""

from __future__ import annotations

import pytest

from kindred.cli.serve import _announce
from kindred.config import load_settings
from tests.e2e.conftest import CONFIG


def test_the_banner_hides_the_store_password_and_lists_the_configs_inputs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "postgresql://kindred:Pg-pa55@db.internal:5432/kindred?sslpassword=x2"
    settings = load_settings(CONFIG, env={"KINDRED_STORE_URL": url})
    _announce(settings, "127.0.0.1", 8080)
    banner = capsys.readouterr().out
    assert "store:    postgresql://kindred:***@db.internal:5432/kindred?sslpassword=***" in banner
    assert "Pg-pa55" not in banner
    assert "x2" not in banner
    for name, key in (("server", "server-key"), ("feed", "feed-key"), ("csv", "csv-key")):
        assert f"{name} (" in banner
        assert f"key {key})" in banner
    # Never an input secret of a config of one's own, nor the demo's keys.
    assert "server-secret" not in banner
    assert "demo-server" not in banner
    assert "(Basic server-key:API_SECRET of input server)" in banner


def test_the_demo_banner_names_the_demo_inputs(capsys: pytest.CaptureFixture[str]) -> None:
    _announce(load_settings(None, env={}), "127.0.0.1", 8080)
    banner = capsys.readouterr().out
    assert "demo-server (server, key demo-server-key)" in banner
    assert "(Basic demo-server-key:demo-server-secret)" in banner
