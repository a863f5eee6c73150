"""`kindred attributes ...`: manage calculated attribute definitions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import msgspec

from kindred.attributes.definition import CalculatedDef
from kindred.bootstrap import Container
from kindred.cli.common import config_option, data_dir_option, echo_json, started
from kindred.domain.errors import KindredError

__all__ = ["attributes"]


def _document(path: str) -> dict[str, object]:
    try:
        doc = msgspec.json.decode(Path(path).read_bytes())
    except msgspec.DecodeError as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    if not isinstance(doc, dict):
        raise click.ClickException(f"{path}: expected a JSON object")
    return doc


@contextmanager
def _service(config_path: str | None, data_dir: str | None) -> Iterator[Container]:
    with started(config_path, data_dir) as container:
        try:
            yield container
        except KindredError as exc:
            raise click.ClickException(str(exc)) from None


@click.group()
def attributes() -> None:
    """Calculated attributes: definitions, activation, computation progress."""


@attributes.command("list")
@config_option
@data_dir_option
def list_(config_path: str | None, data_dir: str | None) -> None:
    """List calculated attributes (not deleted ones)."""
    with _service(config_path, data_dir) as container:
        echo_json(container.calculated.all())


@attributes.command("create")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@config_option
@data_dir_option
def create(file: str, config_path: str | None, data_dir: str | None) -> None:
    """Save a definition (JSON file: name, workspace_id, description, definition) as a
    draft; prints it with its id."""
    doc = _document(file)
    try:
        new = msgspec.convert(
            {**doc, "draft": doc.pop("definition", None)}, CalculatedDef, strict=True
        )
    except msgspec.ValidationError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    with _service(config_path, data_dir) as container:
        echo_json(container.calculated.create(new))


@attributes.command("edit")
@click.argument("def_id", type=int)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@config_option
@data_dir_option
def edit(def_id: int, file: str, config_path: str | None, data_dir: str | None) -> None:
    """Replace the draft definition (JSON file); the active one computes on until the
    draft is activated."""
    draft = _document(file)
    with _service(config_path, data_dir) as container:
        echo_json(container.calculated.edit(def_id, {"draft": draft}))


def _action(name: str, help_text: str, run: Callable[[Container, int], object]) -> None:
    @attributes.command(name, help=help_text)
    @click.argument("def_id", type=int)
    @config_option
    @data_dir_option
    def command(def_id: int, config_path: str | None, data_dir: str | None) -> None:
        with _service(config_path, data_dir) as container:
            echo_json(run(container, def_id))


def _show(container: Container, def_id: int) -> object:
    service = container.calculated
    return {"definition": service.get(def_id), "calculation": service.progress(def_id)}


def _delete(container: Container, def_id: int) -> object:
    container.calculated.delete(def_id)
    return {"deleted": def_id}


_action("show", "Print a definition and the progress of its computation.", _show)
_action(
    "activate",
    "Activate the draft: computed on every batch, and over the stored history in the "
    "background (running servers do it, or `kindred attributes compute`).",
    lambda c, i: c.calculated.activate(i),
)
_action("delete", "Delete a calculated attribute; profiles drop it at their next batch.", _delete)


@attributes.command("compute")
@config_option
@data_dir_option
def compute(config_path: str | None, data_dir: str | None) -> None:
    """Finish every pending computation over the stored history, here and now."""
    with _service(config_path, data_dir) as container:
        computed = 0
        while any(d.backfill_from is not None for d in container.calculated.all()):
            computed += container.calculated_backfill.run()
        echo_json({"profiles_computed": computed})
