"""`kindred audiences test ...`: an audience's A/B test (AUD-8) made, shown and deleted, a
variation's members, a profile's variations."""

from __future__ import annotations

import click

from kindred.audiences.abtest import AbTestRequest, Variation
from kindred.cli.common import config_option, data_dir_option, echo_json, started
from kindred.domain.errors import KindredError

__all__ = ["test"]


def _variation(text: str) -> Variation:
    name, sep, share = text.rpartition("=")
    if not sep or not share.strip().isdigit():
        raise click.BadParameter(f"{text!r}: write NAME=PERCENT (e.g. 'Email=40')")
    return Variation(name=name, percentage=int(share))


@click.group("test")
def test() -> None:
    """An audience's A/B test: up to five variations and the control (the rest)."""


@test.command("set")
@click.argument("audience_id", type=int)
@click.option(
    "--variation",
    "variations",
    multiple=True,
    required=True,
    help="NAME=PERCENT, once per variation, in order (the control takes the rest).",
)
@config_option
@data_dir_option
def set_(
    audience_id: int, variations: tuple[str, ...], config_path: str | None, data_dir: str | None
) -> None:
    """Create the audience's test, or change its variations (members keep theirs)."""
    wanted = AbTestRequest(variations=[_variation(v) for v in variations])
    with started(config_path, data_dir) as container:
        try:
            echo_json(container.abtests.set(audience_id, wanted))
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None


@test.command("show")
@click.argument("audience_id", type=int)
@config_option
@data_dir_option
def show(audience_id: int, config_path: str | None, data_dir: str | None) -> None:
    """The test: each variation's share, members now and connections."""
    with started(config_path, data_dir) as container:
        try:
            echo_json(container.abtests.show(audience_id))
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None


@test.command("delete")
@click.argument("audience_id", type=int)
@config_option
@data_dir_option
def delete(audience_id: int, config_path: str | None, data_dir: str | None) -> None:
    """Delete the test and its variation connections; those sending first send their
    members' removals (the server's delivery does)."""
    with started(config_path, data_dir) as container:
        try:
            ending = container.abtests.delete(audience_id)
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None
        echo_json({"audience_id": audience_id, "ending_connections": ending})


@test.command("members")
@click.argument("audience_id", type=int)
@click.option("--variation", required=True, help="The variation ('Control' for the control).")
@config_option
@data_dir_option
def members(
    audience_id: int, variation: str, config_path: str | None, data_dir: str | None
) -> None:
    """The variation's members now (MPIDs)."""
    with started(config_path, data_dir) as container:
        try:
            found = container.abtests.members(audience_id, variation)
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None
        mpids = [str(m) for m in found]
        echo_json({"audience_id": audience_id, "variation": variation, "mpids": mpids})


@test.command("profile")
@click.option("--mpid", type=int, required=True, help="The profile's MPID.")
@config_option
@data_dir_option
def profile(mpid: int, config_path: str | None, data_dir: str | None) -> None:
    """The profile's variation in every audience with a test."""
    with started(config_path, data_dir) as container:
        echo_json({"mpid": str(mpid), "variations": container.abtests.of_profile(mpid)})
