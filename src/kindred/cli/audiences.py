"""`kindred audiences ...`: manage audience definitions and read membership history."""

from __future__ import annotations

import time
from pathlib import Path

import click
import msgspec

from kindred.audiences.definition import AudienceDef
from kindred.audiences.versions import version_view
from kindred.cli.common import audience_file, config_option, data_dir_option, echo_json, started
from kindred.domain.errors import KindredError
from kindred.wire.errors import as_invalid_batch

__all__ = ["audiences"]

# Who saves through the CLI, in an audience's history.
_BY = "cli"


@click.group()
def audiences() -> None:
    """Real-time and standard audiences: definitions, activation, calculation, membership
    history."""


@audiences.command("list")
@click.option("--tag", "tags", multiple=True, help="Only audiences with every tag given.")
@config_option
@data_dir_option
def list_(tags: tuple[str, ...], config_path: str | None, data_dir: str | None) -> None:
    """List audiences (not deleted ones), each with its size: the estimate
    (`size_estimated`) until its activation's calculation is complete."""
    with started(config_path, data_dir) as container:
        echo_json([container.estimates.item(a) for a in container.audiences.all(tags)])


@audiences.command("create")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@config_option
@data_dir_option
def create(file: str, config_path: str | None, data_dir: str | None) -> None:
    """Save a definition (JSON file) as a draft; prints it with its id."""
    with started(config_path, data_dir) as container:
        try:
            echo_json(container.audiences.create(audience_file(file), created_by=_BY))
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None


@audiences.command("update")
@click.argument("audience_id", type=int)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@config_option
@data_dir_option
def update(audience_id: int, file: str, config_path: str | None, data_dir: str | None) -> None:
    """Replace an audience's definition (its status stays, and its access when the file
    names none)."""
    with started(config_path, data_dir) as container:
        try:
            changed = audience_file(file)
            if "access" not in msgspec.json.decode(Path(file).read_bytes()):
                current = container.audiences.get(audience_id)
                changed = msgspec.structs.replace(changed, access=current.access)
            echo_json(container.audiences.update(audience_id, changed, changed_by=_BY))
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None


def _action(name: str, help_text: str) -> None:
    @audiences.command(name, help=help_text)
    @click.argument("audience_id", type=int)
    @config_option
    @data_dir_option
    def run(audience_id: int, config_path: str | None, data_dir: str | None) -> None:
        with started(config_path, data_dir) as container:
            service = container.audiences
            try:
                if name == "show":
                    echo_json(container.estimates.item(service.get(audience_id)))
                elif name == "metrics":
                    echo_json(service.metrics(audience_id))
                elif name == "clone":
                    echo_json(service.clone(audience_id))
                elif name == "delete":
                    echo_json(service.delete(audience_id, changed_by=_BY))
                else:
                    status = "active" if name == "activate" else "inactive"
                    echo_json(service.set_status(audience_id, status, changed_by=_BY))
            except KindredError as exc:
                raise click.ClickException(str(exc)) from None


_action("show", "Print one audience with its size (estimated until it is calculated).")
_action("metrics", "Size, adds and drops in the last 24 hours, volatility, last updated.")
_action("activate", "Activate: the audience starts taking members.")
_action("deactivate", "Deactivate: its members leave at their next evaluation.")
_action("clone", "Copy an audience (tags included) as a new draft.")
_action("delete", "Delete an audience (refused while another nests it).")


@audiences.command("estimate")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--id", "audience_id", type=int, help="Estimate a saved audience instead.")
@config_option
@data_dir_option
def estimate(
    file: str | None, audience_id: int | None, config_path: str | None, data_dir: str | None
) -> None:
    """Estimate the size of a definition (JSON file, not saved; its name optional) or of a
    saved audience (--id), and of each top-level criterion, from a sample of profiles;
    `~` when too few sampled profiles are members."""
    if (file is None) == (audience_id is None):
        raise click.UsageError("give a definition FILE or --id, one of them")
    with started(config_path, data_dir) as container:
        try:
            if audience_id is not None:
                audience = container.audiences.get(audience_id)
            else:
                assert file is not None
                audience = _unsaved(file)
            echo_json(container.estimates.estimate(audience))
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None


def _unsaved(path: str) -> AudienceDef:
    try:
        doc = msgspec.json.decode(Path(path).read_bytes())
        if not isinstance(doc, dict):
            raise click.ClickException(f"{path}: a definition is a JSON object")
        return msgspec.convert({"name": "", **doc, "id": 0}, AudienceDef)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise click.ClickException(f"{path}: {as_invalid_batch(exc)}") from None


@audiences.command("calculate")
@click.argument("audience_id", type=int)
@click.option(
    "--no-wait", is_flag=True, help="Only ask for it: a running server's background job runs it."
)
@config_option
@data_dir_option
def calculate(
    audience_id: int, no_wait: bool, config_path: str | None, data_dir: str | None
) -> None:
    """Calculate a standard audience over the whole retained event log (here and now
    unless --no-wait); prints the audience with its computed and expiry times."""
    with started(config_path, data_dir) as container:
        try:
            asked = container.audiences.calculate(audience_id, changed_by=_BY)
            if not no_wait:
                while container.audiences.get(audience_id).calc_requested_ms is not None:
                    if not container.standard_audiences.run():
                        time.sleep(0.2)  # held by another process, or nothing moved
                asked = container.audiences.get(audience_id)
            echo_json(asked)
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None


@audiences.command("members")
@click.argument("audience_id", type=int)
@click.option("--at", "at_ms", type=int, help="An instant (epoch ms); default now.")
@config_option
@data_dir_option
def members(
    audience_id: int, at_ms: int | None, config_path: str | None, data_dir: str | None
) -> None:
    """The audience's members at an instant, from the membership log."""
    with started(config_path, data_dir) as container:
        at = at_ms if at_ms is not None else container.clock.now_ms()
        found = container.audiences.members_at(audience_id, at)
        echo_json({"audience_id": audience_id, "at_ms": at, "mpids": [str(m) for m in found]})


@audiences.command("versions")
@click.argument("audience_id", type=int)
@click.option("--at", "at_ms", type=int, help="Only the version in force at this instant (ms).")
@config_option
@data_dir_option
def versions(
    audience_id: int, at_ms: int | None, config_path: str | None, data_dir: str | None
) -> None:
    """Every saved version of the definition, with who saved it and when."""
    with started(config_path, data_dir) as container:
        service = container.audiences
        try:
            if at_ms is not None:
                echo_json(version_view(service.in_force_at(audience_id, at_ms)))
            else:
                echo_json([version_view(v) for v in service.versions(audience_id)])
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None


@audiences.command("diff")
@click.argument("audience_id", type=int)
@click.argument("before", type=int)
@click.argument("after", type=int)
@config_option
@data_dir_option
def diff(
    audience_id: int, before: int, after: int, config_path: str | None, data_dir: str | None
) -> None:
    """What changed from version BEFORE to version AFTER."""
    with started(config_path, data_dir) as container:
        try:
            echo_json(container.audiences.diff(audience_id, before, after))
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None


@audiences.command("download")
@click.argument("audience_ids", type=int, nargs=-1, required=True)
@click.option(
    "--identity-type",
    "identity_types",
    multiple=True,
    required=True,
    help="An identity type to include (repeat for several): email, customer_id, ios_idfa ...",
)
@click.option("--sample", type=int, help="At most this many users per audience.")
@click.option(
    "--variation",
    "variations",
    multiple=True,
    help="One audience's A/B test variation, a CSV each (repeat for several; 'Control').",
)
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False), help="The ZIP file to write."
)
@config_option
@data_dir_option
def download(
    audience_ids: tuple[int, ...],
    *,
    identity_types: tuple[str, ...],
    sample: int | None,
    variations: tuple[str, ...],
    out: str,
    config_path: str | None,
    data_dir: str | None,
) -> None:
    """Write a ZIP of the audiences' members' identities: one CSV per audience and
    manifest.json; prints the manifest."""
    with started(config_path, data_dir) as container:
        try:
            prepared = container.downloads.prepare(
                list(audience_ids), identity_types, sample, variations
            )
            partial = Path(out + ".partial")
            with partial.open("wb") as file:
                for chunk in prepared.chunks():
                    file.write(chunk)
            partial.replace(out)
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None
        echo_json(prepared.manifest)
