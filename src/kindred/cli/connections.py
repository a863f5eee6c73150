"""`kindred connections ...` and `kindred deliver`: look at connections, resume faulted ones,
inspect and replay dead letters, and send what the outbox holds."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from kindred.cli.common import config_option, data_dir_option, echo_json, started
from kindred.domain.errors import KindredError

__all__ = ["connections", "deliver"]


@click.group()
def connections() -> None:
    """Event and audience connections: status, resume, dead letters."""


@connections.command("list")
@config_option
@data_dir_option
def list_(config_path: str | None, data_dir: str | None) -> None:
    """Every connection with its status, pending rows, delivered messages and last error."""
    with started(config_path, data_dir) as container:
        echo_json(container.deliveries.connections())


@connections.command("resume")
@click.argument("name")
@config_option
@data_dir_option
def resume(name: str, config_path: str | None, data_dir: str | None) -> None:
    """Clear a connection's fault and backoff: everything pending is sent again (by the
    running servers, or by `kindred deliver`)."""
    with started(config_path, data_dir) as container:
        try:
            echo_json(container.deliveries.resume(name))
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None


@connections.command("dead-letters")
@click.option("--connection", default=None, help="Only this connection's.")
@click.option("--limit", default=100, show_default=True)
@config_option
@data_dir_option
def dead_letters(
    connection: str | None, limit: int, config_path: str | None, data_dir: str | None
) -> None:
    """Deliveries an output refused for good, oldest first."""
    with started(config_path, data_dir) as container:
        found = container.deliveries.dead_letters(connection, limit)
        echo_json(found)


@connections.command("replay")
@click.option("--connection", default=None, help="Only this connection's dead letters.")
@click.option("--id", "ids", type=int, multiple=True, help="Only these dead letters.")
@config_option
@data_dir_option
def replay(
    connection: str | None, ids: tuple[int, ...], config_path: str | None, data_dir: str | None
) -> None:
    """Put dead letters back at the end of their connection's outbox."""
    with started(config_path, data_dir) as container:
        count = container.deliveries.replay(connection, list(ids) or None)
        echo_json({"replayed": count})


@click.command()
@click.option(
    "--follow", is_flag=True, help="Keep sending as new rows arrive, until stopped (SIGTERM)."
)
@config_option
@data_dir_option
def deliver(follow: bool, config_path: str | None, data_dir: str | None) -> None:
    """Send what the outbox holds over every enabled connection (beside or instead of the
    servers: one process at a time sends over a connection)."""
    with started(config_path, data_dir) as container:
        if not follow:
            echo_json({"finished_rows": container.delivery.drain()})
            return
        stop = threading.Event()

        def on_signal(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        container.delivery.reconcile()
        try:
            while not stop.wait(2.0):
                container.delivery.reconcile()
        finally:
            container.delivery.stop()
