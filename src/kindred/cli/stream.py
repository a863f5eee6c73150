"""`kindred stream status`: the batch log of roles api and worker (docs/deployment.md)."""

from __future__ import annotations

import time

import click

from kindred.cli.common import config_option, data_dir_option, echo_json, started
from kindred.domain.errors import KindredError

__all__ = ["stream"]


@click.group()
def stream() -> None:
    """The batch log between API processes and workers."""


@stream.command("status")
@click.option("--json", "as_json", is_flag=True, help="The status as JSON.")
@config_option
@data_dir_option
def status(as_json: bool, config_path: str | None, data_dir: str | None) -> None:
    """The backlog (batches appended, not yet applied: bytes, count, oldest's age) and,
    per partition, its applied position, the records the stream holds (lag: an upper
    bound, applied ones wait for the next trim) and its worker."""
    with started(config_path, data_dir) as container:
        try:
            report = container.log_status().as_dict(int(time.time() * 1000))
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json(report)
        return
    click.echo(
        f"backlog: {report['backlog_batches']} batches, {report['backlog_bytes']} bytes,"
        f" oldest {report['backlog_age_s']:.1f} s"
    )
    click.echo(f"{'partition':>9} {'position':>10} {'lag':>8}  worker")
    for row in report["partitions"]:  # type: ignore[attr-defined]
        click.echo(
            f"{row['partition']:>9} {row['position']:>10} {row['lag']:>8}  {row['worker'] or '-'}"
        )
