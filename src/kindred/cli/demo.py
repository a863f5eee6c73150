"""Loading the demo: its definitions (calculated attributes, audiences, outputs and
connections) through the services the admin API uses, then its users' batches through the
ingest pipeline. Safe to repeat: definitions are made only when missing (by name), batches
carry fixed request ids."""

from __future__ import annotations

import msgspec

from kindred.attributes.definition import CalculatedDef
from kindred.audiences.definition import AudienceDef
from kindred.bootstrap import Container
from kindred.demo import definitions
from kindred.demo.data import demo_batches
from kindred.services.writes.commands import Accepted
from kindred.wire.observe import observe

__all__ = ["load_demo"]

_WORKSPACE = 1
_DEMO_INPUT = "demo-server"


def load_demo(container: Container) -> str:
    """Load what is missing of the demo; returns a one-line summary."""
    made = 0
    if _has_demo_tenancy(container):
        made = _calculated(container) + _audiences(container) + _forwarding(container)
    now = container.clock.now_ms()
    items = []
    for input_name, batch in demo_batches(now):
        source = container.tenancy.input_named(input_name)
        if source is None:
            continue  # a custom config without the demo inputs
        body = msgspec.json.encode(batch)
        items.append(Accepted(source, observe(body, source, now), body))
    outcomes = container.commands.run_all(items)
    applied = sum(1 for o in outcomes if o.status == "applied")
    return (
        f"{made} demo definitions made, {applied} demo batches applied, "
        f"{len(outcomes) - applied} already present"
    )


def _has_demo_tenancy(container: Container) -> bool:
    source = container.tenancy.input_named(_DEMO_INPUT)
    return source is not None and source.workspace.workspace_id == _WORKSPACE


def _calculated(container: Container) -> int:
    have = {d.name for d in container.calculated.all() if d.workspace_id == _WORKSPACE}
    made = 0
    for doc in definitions.DEMO_CALCULATED:
        if doc["name"] in have:
            continue
        draft = msgspec.convert({**doc, "workspace_id": _WORKSPACE}, CalculatedDef)
        container.calculated.activate(container.calculated.create(draft).id)
        made += 1
    return made


def _audiences(container: Container) -> int:
    have = {a.name for a in container.audiences.all()}
    made = 0
    for doc in definitions.DEMO_AUDIENCES:
        if doc["name"] in have:
            continue
        audience = msgspec.convert({**doc, "workspaces": [_WORKSPACE]}, AudienceDef)
        created = container.audiences.create(audience, created_by="demo")
        container.audiences.set_status(created.id, "active")
        made += 1
    return made


def _forwarding(container: Container) -> int:
    current = container.catalog.current()
    have = {o.name for o in current.outputs} | {c.name for c in current.connections()}
    ids = {a.name: a.id for a in container.audiences.all()}
    wanted = [
        *(("output", d) for d in definitions.demo_outputs(container.settings.data_dir)),
        *(("event_connection", d) for d in definitions.demo_event_connections()),
        *(("audience_connection", d) for d in definitions.demo_audience_connections(ids)),
    ]
    made = 0
    for kind, doc in wanted:
        if doc["name"] not in have:
            container.catalog.save(kind, msgspec.json.encode(doc))
            made += 1
    return made
