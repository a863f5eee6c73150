"""`kindred users ...`: users of the web UI and the admin API, their roles and API keys."""

from __future__ import annotations

import sys

import click

from kindred.cli.common import config_option, data_dir_option, echo_json, started
from kindred.domain.errors import KindredError
from kindred.domain.users import Role

__all__ = ["users"]

_ROLES = click.Choice([r.value for r in Role])


@click.group()
def users() -> None:
    """Users (admin, editor, viewer) and their admin API keys; config-file users
    ([[ui.users]]) are listed here and changed in the config."""


def _password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    text: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return text


@users.command("add")
@click.argument("name")
@click.option("--role", type=_ROLES, required=True, help="What the user may do.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@config_option
@data_dir_option
def users_add(
    name: str, role: str, password_stdin: bool, config_path: str | None, data_dir: str | None
) -> None:
    """Add a user to the store (the password from a prompt unless --password-stdin)."""
    password = _password(password_stdin)
    with started(config_path, data_dir) as container:
        try:
            user = container.users.add(name, role, password)
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"added {user.name} ({user.role})")


@users.command("list")
@config_option
@data_dir_option
def users_list(config_path: str | None, data_dir: str | None) -> None:
    """Every user, from the config file and the store, with their keys (never secrets)."""
    with started(config_path, data_dir) as container:
        directory = container.users
        rows = [
            {
                "name": u.name,
                "role": u.role,
                "origin": u.origin,
                "keys": [
                    {"key_id": k.key_id, "created_ms": k.created_ms, "revoked_ms": k.revoked_ms}
                    for k in directory.keys(u.name)
                ],
            }
            for u in directory.all()
        ]
        clashes = directory.clashes()
    echo_json(rows)
    for name in clashes:
        click.echo(
            f"error: user {name!r} is both in the config file and in the store; neither may"
            " sign in until one goes (`kindred users remove` or the config)",
            err=True,
        )


@users.command("set-role")
@click.argument("name")
@click.argument("role", type=_ROLES)
@config_option
@data_dir_option
def users_set_role(name: str, role: str, config_path: str | None, data_dir: str | None) -> None:
    """Change a stored user's role (from their next request on)."""
    with started(config_path, data_dir) as container:
        try:
            user = container.users.set_role(name, role)
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"{user.name} is {user.role}")


@users.command("remove")
@click.argument("name")
@config_option
@data_dir_option
def users_remove(name: str, config_path: str | None, data_dir: str | None) -> None:
    """Remove a stored user and their keys (their sessions end at once)."""
    with started(config_path, data_dir) as container:
        try:
            container.users.remove(name)
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"removed {name}")


@users.group("key")
def key() -> None:
    """A user's API keys for the admin API."""


@key.command("create")
@click.argument("name")
@config_option
@data_dir_option
def key_create(name: str, config_path: str | None, data_dir: str | None) -> None:
    """Create an API key; it is printed once (the store keeps only a hash)."""
    with started(config_path, data_dir) as container:
        try:
            issued = container.users.create_key(name)
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None
    echo_json(issued)


@key.command("revoke")
@click.argument("name")
@click.argument("key_id")
@config_option
@data_dir_option
def key_revoke(name: str, key_id: str, config_path: str | None, data_dir: str | None) -> None:
    """Revoke one of the user's keys: refused at once, in every process."""
    with started(config_path, data_dir) as container:
        try:
            container.users.revoke_key(name, key_id)
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"revoked {key_id}")
