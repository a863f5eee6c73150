"""`kindred ui ...`: what the web UI's configuration needs."""

from __future__ import annotations

import click

from kindred.domain.credentials import hash_secret
from kindred.system import SecureSecrets

__all__ = ["ui"]


@click.group()
def ui() -> None:
    """The web UI (/ui/)."""


@ui.command("hash-password")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Read from a prompt when omitted.",
)
def hash_password(password: str) -> None:
    """Print a hash of a password for `ui.users[].password_hash` in the config file."""
    if not password:
        raise click.ClickException("the password must not be empty")
    click.echo(hash_secret(password, SecureSecrets().token_bytes(16)))
