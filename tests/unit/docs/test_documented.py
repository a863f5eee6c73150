"""Every setting, CLI command and route is documented (docs that tests check)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import msgspec

from kindred.api.app import create_app
from kindred.api.fastpath import FastPath
from kindred.audiences.operands import MAX_DAYS
from kindred.bootstrap import build
from kindred.cli.main import main
from kindred.config import Settings, load_settings
from kindred.wire.limits import INSTANT_END_MS, INT64_MAX, INT64_MIN, MAX_JSON_DEPTH

DOCS = Path(__file__).resolve().parents[3] / "docs"


def _setting_keys(struct: type[msgspec.Struct], prefix: str = "") -> list[str]:
    keys = []
    for field in msgspec.structs.fields(struct):
        key = f"{prefix}{field.name}"
        inner = field.type
        args = getattr(inner, "__args__", ())
        if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
            keys += _setting_keys(inner, f"{key}.")
        elif args and isinstance(args[0], type) and issubclass(args[0], msgspec.Struct):
            keys += _setting_keys(args[0], f"{key}[].")
        else:
            keys.append(key)
    return keys


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [k for k in _setting_keys(Settings) if f"`{k}`" not in text]
    assert not missing, f"undocumented settings: {missing}"


def test_the_documentation_names_no_setting_that_does_not_exist() -> None:
    text = (DOCS / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_\[\].]+)` \|", text, flags=re.MULTILINE))
    assert documented - set(_setting_keys(Settings)) == set()


def _commands(group: click.Group, prefix: str = "kindred") -> list[str]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix} {name}")
        else:
            found.append(f"{prefix} {name}")
    return found


def test_every_cli_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    missing = [c for c in _commands(main) if f"`{c}" not in text]
    assert not missing, f"undocumented commands: {missing}"


def test_every_route_is_documented(tmp_path: Path) -> None:
    container = build(load_settings(None, data_dir=str(tmp_path), env={}))
    app = create_app(container, manage_lifecycle=False)
    assert isinstance(app, FastPath)
    starlette_paths = [route.path for route in app.fallback_routes()]
    fast_paths = app.paths()
    text = (DOCS / "http.md").read_text()
    missing = [p for p in [*starlette_paths, *fast_paths] if p not in text]
    assert not missing, f"undocumented routes: {missing}"
    container.store.close()


def test_the_input_limits_are_documented_as_enforced() -> None:
    text = (DOCS / "http.md").read_text()
    section = text.split("## Limits on input", 1)[1].split("\n## ", 1)[0]
    assert f"at most {MAX_JSON_DEPTH} levels" in section
    assert f"{INT64_MIN} to {INT64_MAX}" in section
    assert f"0 <= ms < {INSTANT_END_MS}" in section
    assert f"at most {MAX_DAYS} days" in section
