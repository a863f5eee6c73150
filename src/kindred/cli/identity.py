"""`kindred identity ...` (merges, un-merges, aliases) and `kindred quarantine ...`."""

from __future__ import annotations

import sys
from typing import TypeVar

import click
import msgspec

from kindred.bootstrap import Container
from kindred.cli.common import chosen_workspace, config_option, data_dir_option, started
from kindred.domain.errors import KindredError
from kindred.services.writes.commands import AliasCall, Command, UnmergeCall

__all__ = ["identity", "quarantine"]

R = TypeVar("R")


@click.group()
def identity() -> None:
    """The merge ledger: list merges, undo one, alias one profile onto another."""


def _run(container: Container, call: Command[R]) -> R:
    """The call's outcome; its refusal as the command's error."""
    try:
        return container.commands.run(call)
    except KindredError as refusal:
        raise click.ClickException(str(refusal)) from None


@identity.command("merges")
@click.option("--mpid", type=int, help="Only merges this MPID took part in.")
@click.option("--limit", type=int, default=50, show_default=True)
@config_option
@data_dir_option
def merges(mpid: int | None, limit: int, config_path: str | None, data_dir: str | None) -> None:
    """List the merge ledger, newest first."""
    with started(config_path, data_dir) as container:
        rows = container.ledger.rows(mpid, limit)
    click.echo(msgspec.json.format(msgspec.json.encode(rows)).decode())


@identity.command("unmerge")
@click.argument("merge_id", type=int)
@click.option("--workspace", type=int, help="A workspace of the merge's identity scope.")
@config_option
@data_dir_option
def unmerge(
    merge_id: int, workspace: int | None, config_path: str | None, data_dir: str | None
) -> None:
    """Undo a merge: both profiles as they were, later batches applied again."""
    with started(config_path, data_dir) as container:
        call = UnmergeCall(
            scope=chosen_workspace(container, workspace).identity_scope,
            received_ms=container.clock.now_ms(),
            merge_id=merge_id,
        )
        outcome = _run(container, call)
    click.echo(msgspec.json.encode({"merge": merge_id, "reapplied": outcome.reapplied}).decode())


@identity.command("alias")
@click.option("--source", "source", type=int, required=True, help="MPID whose data moves.")
@click.option("--destination", type=int, required=True, help="MPID that receives it.")
@click.option("--start-ms", type=int, help="Events from (default: destination's 90 days).")
@click.option("--end-ms", type=int, help="Events until (default: now).")
@click.option("--workspace", type=int, help="A workspace of the profiles' identity scope.")
@config_option
@data_dir_option
def alias(
    *,
    source: int,
    destination: int,
    start_ms: int | None,
    end_ms: int | None,
    workspace: int | None,
    config_path: str | None,
    data_dir: str | None,
) -> None:
    """Fold one profile into another, as the SDKs' alias call does."""
    with started(config_path, data_dir) as container:
        now = container.clock.now_ms()
        end = end_ms if end_ms is not None else now
        ws = chosen_workspace(container, workspace)
        call = AliasCall(
            max_merged=ws.account.guardrails.max_profiles_merged,
            scope=ws.identity_scope,
            received_ms=now,
            source=source,
            destination=destination,
            start_ms=start_ms if start_ms is not None else end - 90 * 86_400_000,
            end_ms=end,
            rule="admin",
        )
        outcome = _run(container, call)
    click.echo(msgspec.json.encode({"survivor": str(destination), "moved": outcome.moved}))


@click.group()
def quarantine() -> None:
    """Web batches that could not be read, kept with their reason."""


@quarantine.command("list")
@click.option("--limit", type=int, default=50, show_default=True)
@config_option
@data_dir_option
def quarantine_list(limit: int, config_path: str | None, data_dir: str | None) -> None:
    """List quarantined batches, newest first."""
    with started(config_path, data_dir) as container:
        rows = [
            {
                "id": r.id,
                "input": r.input,
                "received_ms": r.received_ms,
                "reason": r.reason,
                "replayed_ms": r.replayed_ms,
                "body": r.body.decode("utf-8", "replace"),
            }
            for r in container.quarantine.quarantined(limit)
        ]
    click.echo(msgspec.json.format(msgspec.json.encode(rows)).decode())


@quarantine.command("replay")
@click.option("--id", "ids", type=int, multiple=True, help="Only these (repeatable).")
@config_option
@data_dir_option
def quarantine_replay(ids: tuple[int, ...], config_path: str | None, data_dir: str | None) -> None:
    """Send quarantined batches through ingest again; print what still cannot be read."""
    with started(config_path, data_dir) as container:
        report = container.quarantine.replay(ids)
    click.echo(msgspec.json.format(msgspec.json.encode(report)).decode())
    if report.still_invalid:
        sys.exit(1)
