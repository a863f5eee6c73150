"""`kindred retention run`: the lifetime sweep, the event retention (RET-1) and the
attribute expiry (RET-4) now, with progress; `kindred profiles delete`: bulk deletion
through the erasure of data subject requests (docs/privacy.md)."""

from __future__ import annotations

import click

from kindred.cli.common import config_option, data_dir_option, echo_json, started
from kindred.domain.errors import KindredError
from kindred.services.privacy.bulk import IdentityName
from kindred.services.privacy.retention import EventsReport, ExpiryReport, SweepReport

__all__ = ["profiles", "retention"]


@click.group()
def retention() -> None:
    """Data retention: profiles past their lifetime, events past the retention period,
    attribute values past their time to live."""


@retention.command("run")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@config_option
@data_dir_option
def run(quiet: bool, config_path: str | None, data_dir: str | None) -> None:
    """Delete the aged-out profiles (they leave their audiences, removals are sent), the
    batches past their account's retention period and the attribute values past their
    time to live (the audiences reading them evaluated again) now (safe beside running
    servers)."""

    def on_profiles(report: SweepReport) -> None:
        if not quiet:
            click.echo(
                f"profiles: {report.deleted} deleted, {report.exits} audience exits", err=True
            )

    def on_events(report: EventsReport) -> None:
        if not quiet:
            click.echo(
                f"events: {report.pruned} batches deleted, {report.recomputed} profiles recomputed",
                err=True,
            )

    def on_attributes(report: ExpiryReport) -> None:
        if not quiet:
            click.echo(
                f"attributes: {report.removed} expired values removed from {report.profiles}"
                f" profiles, {report.exits} audience exits",
                err=True,
            )

    with started(config_path, data_dir) as container:
        echo_json(container.retention.run(on_profiles, on_events, on_attributes))


@click.group()
def profiles() -> None:
    """Profiles: bulk deletion."""


@profiles.command("delete")
@click.option("--mpid", "mpids", type=int, multiple=True, help="A profile's MPID (repeatable).")
@click.option(
    "--identity",
    "identities",
    multiple=True,
    help="TYPE=VALUE, e.g. email=ada@example.com (repeatable; with --workspace).",
)
@click.option("--workspace", type=int, help="With --identity: whose identity scope.")
@config_option
@data_dir_option
def delete(
    mpids: tuple[int, ...],
    identities: tuple[str, ...],
    workspace: int | None,
    config_path: str | None,
    data_dir: str | None,
) -> None:
    """Erase profiles by MPID or by identity, as an erasure request would (at once, no
    waiting period); prints what was removed for each."""
    if bool(mpids) == bool(identities):
        raise click.UsageError("give --mpid or --identity (not both)")
    named: list[IdentityName] = []
    for text in identities:
        kind, sep, value = text.partition("=")
        if not sep:
            raise click.BadParameter(f"{text!r} is not TYPE=VALUE", param_hint="--identity")
        named.append(IdentityName(type=kind, value=value))
    with started(config_path, data_dir) as container:
        try:
            if mpids:
                done = container.bulk_delete.by_mpids(list(mpids))
            else:
                ws = (
                    workspace if workspace is not None else next(iter(container.tenancy.workspaces))
                )
                done = container.bulk_delete.by_identities(ws, named)
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None
        echo_json({"profiles": done, "deleted": sum(d.found for d in done)})
