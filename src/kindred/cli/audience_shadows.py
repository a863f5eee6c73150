"""`kindred audiences shadow ...`: shadow edits of an active audience (BEY-4): start one,
see its progress and preview, promote or discard it."""

from __future__ import annotations

import time

import click

from kindred.cli.common import audience_file, config_option, data_dir_option, echo_json, started
from kindred.domain.errors import KindredError

__all__ = ["shadow"]

# Who saves through the CLI, in an audience's history.
_BY = "cli"


@click.group()
def shadow() -> None:
    """Edit an active audience in shadow: the new definition computed while the current one
    serves, previewed, then promoted or discarded."""


@shadow.command("start")
@click.argument("audience_id", type=int)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--no-wait",
    is_flag=True,
    help="Only start it: a running server's background job computes it.",
)
@config_option
@data_dir_option
def start(
    audience_id: int, file: str, no_wait: bool, config_path: str | None, data_dir: str | None
) -> None:
    """Start computing the definition in FILE (JSON) as the audience's shadow edit (here
    and now unless --no-wait); prints its status and preview."""
    with started(config_path, data_dir) as container:
        shadows = container.audience_shadows
        try:
            view = shadows.start(audience_id, audience_file(file), started_by=_BY)
            if not no_wait:
                while view.status == "computing":
                    if not shadows.run():
                        time.sleep(0.2)  # held by another process, or nothing moved
                    view = shadows.show(audience_id)
            echo_json(view)
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None


@shadow.command("show")
@click.argument("audience_id", type=int)
@config_option
@data_dir_option
def show(audience_id: int, config_path: str | None, data_dir: str | None) -> None:
    """The shadow's status, progress and preview: how many profiles would enter and leave,
    with the first MPIDs of each."""
    with started(config_path, data_dir) as container:
        try:
            echo_json(container.audience_shadows.show(audience_id))
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None


@shadow.command("promote")
@click.argument("audience_id", type=int)
@config_option
@data_dir_option
def promote(audience_id: int, config_path: str | None, data_dir: str | None) -> None:
    """Make the shadow's definition the audience's; prints how many profiles entered and
    left. Refused unless the shadow is ready."""
    with started(config_path, data_dir) as container:
        try:
            echo_json(container.audience_shadows.promote(audience_id, promoted_by=_BY))
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None


@shadow.command("discard")
@click.argument("audience_id", type=int)
@config_option
@data_dir_option
def discard(audience_id: int, config_path: str | None, data_dir: str | None) -> None:
    """Drop the shadow: nothing else changes."""
    with started(config_path, data_dir) as container:
        try:
            echo_json(container.audience_shadows.discard(audience_id))
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None
