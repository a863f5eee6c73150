"""Options and set-up shared by the CLI's command modules."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import click
import msgspec

from kindred.audiences.definition import AudienceDef
from kindred.bootstrap import Container, build, missing_store
from kindred.config import Settings, load_settings
from kindred.domain.errors import KindredError
from kindred.domain.tenancy import WorkspaceDef
from kindred.wire.errors import as_invalid_batch

__all__ = [
    "audience_file",
    "chosen_workspace",
    "config_option",
    "data_dir_option",
    "echo_json",
    "existing_store",
    "settings_of",
    "started",
]

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML config file (default: the demo config, or $KINDRED_CONFIG).",
)
data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False), help="Where the embedded store lives."
)


def settings_of(config_path: str | None, data_dir: str | None) -> Settings:
    try:
        return load_settings(config_path, data_dir=data_dir)
    except KindredError as exc:
        raise click.ClickException(str(exc)) from None


def existing_store(settings: Settings) -> Settings:
    """The settings, when their store exists: a command that reads or changes a store
    never makes an empty one where the user did not mean to look (only `serve`, `migrate`
    and `demo` make a store)."""
    missing = missing_store(settings)
    if missing is not None:
        raise click.ClickException(
            f"no Kindred store at {missing} (data directory {settings.data_dir!r}, from "
            "--data-dir, else $KINDRED_DATA_DIR, else the config's data_dir, else ./data): "
            "point --data-dir at the server's data directory, or start `kindred serve` there"
        )
    return settings


@contextlib.contextmanager
def started(config_path: str | None, data_dir: str | None) -> Iterator[Container]:
    """A container on the existing store (migrated), closed afterwards."""
    container = build(existing_store(settings_of(config_path, data_dir)))
    container.migrate()
    try:
        yield container
    finally:
        container.close()


def chosen_workspace(container: Container, workspace: int | None) -> WorkspaceDef:
    """The workspace a command's `--workspace` names (the first one without it)."""
    workspaces = container.tenancy.workspaces
    if workspace is None:
        return next(iter(workspaces.values()))
    if workspace not in workspaces:
        raise click.ClickException(f"--workspace: no workspace with id {workspace}")
    return workspaces[workspace]


def echo_json(value: object) -> None:
    """A command's answer: indented JSON on standard output."""
    click.echo(msgspec.json.format(msgspec.json.encode(value)).decode())


def audience_file(path: str) -> AudienceDef:
    """An audience definition read from a JSON file; a clear error naming the file."""
    try:
        return msgspec.json.decode(Path(path).read_bytes(), type=AudienceDef)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise click.ClickException(f"{path}: {as_invalid_batch(exc)}") from None
