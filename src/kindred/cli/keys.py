"""`kindred keys ...`: where the server's keys come from, new keys, and their rotation."""

from __future__ import annotations

import click
import msgspec

from kindred.cli.common import config_option, data_dir_option, started
from kindred.config.keys import KEY_NAMES, generate_key
from kindred.domain.errors import KindredError

__all__ = ["keys"]


@click.group()
def keys() -> None:
    """The server's keys: output secrets encryption, token signing, UI sessions."""


@keys.command("list")
@config_option
@data_dir_option
def list_(config_path: str | None, data_dir: str | None) -> None:
    """Where each key comes from: the environment, a key file, or the store."""
    with started(config_path, data_dir) as container:
        found = [{"name": s.name, "from": s.describe()} for s in container.key_sources()]
    click.echo(msgspec.json.format(msgspec.json.encode(found)).decode())


@keys.command("generate")
def generate() -> None:
    """Print a new random key, for an environment variable or a key file."""
    click.echo(generate_key())


@keys.command("rotate")
@click.option(
    "--name",
    "names",
    multiple=True,
    type=click.Choice(KEY_NAMES),
    help="A key to rotate (repeatable); default: all three.",
)
@config_option
@data_dir_option
def rotate(names: tuple[str, ...], config_path: str | None, data_dir: str | None) -> None:
    """Replace keys with new random ones. Restart the servers afterwards: each process reads
    the signing keys once. Tokens and UI sessions signed with an old key stop working;
    rotating the secrets key encrypts every stored output secret again under the new one."""
    failed = False
    with started(config_path, data_dir) as container:
        for name in names or KEY_NAMES:
            try:
                click.echo(container.rotate_key(name))
            except KindredError as exc:
                click.echo(f"{name}: {exc}", err=True)
                failed = True
    if failed:
        raise SystemExit(1)
