"""Running the server, and loading the demo data through the real pipeline."""

from __future__ import annotations

import logging

import msgspec
import uvicorn

from kindred.api.app import create_app
from kindred.bootstrap import Container, build
from kindred.config import Settings
from kindred.services.ingest import Accepted, observe

__all__ = ["load_demo", "run_server"]

log = logging.getLogger("kindred.serve")


def run_server(settings: Settings, *, host: str | None, port: int | None, demo_data: bool) -> None:
    container = build(settings)
    if demo_data:
        container.store.migrate()
        log.info("demo data: %s", load_demo(container))
    host = host or settings.server.host
    port = port or settings.server.port
    app = create_app(container)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    _announce(settings, host, port)
    uvicorn.Server(config).run()


def _announce(settings: Settings, host: str, port: int) -> None:
    base = f"http://{host}:{port}"
    print(
        f"Kindred listening on {base}\n"
        f"  config:   {settings.source}\n"
        f"  store:    {settings.store.url} (data dir {settings.data_dir})\n"
        f"  send:     POST {base}/v2/events  (Basic demo-server-key:demo-server-secret)\n"
        f"  health:   {base}/healthz   metrics: {base}/metrics\n"
        f"  profiles: kindred profile get --identity customer_id=demo-0001"
        + (f" --data-dir {settings.data_dir}" if settings.data_dir != "data" else ""),
        flush=True,
    )


def load_demo(container: Container) -> str:
    """Send the demo batches through the ingest pipeline; returns a one-line summary."""
    from kindred.demo.data import demo_batches  # noqa: PLC0415 - demo only

    now = container.clock.now_ms()
    items = []
    for input_name, batch in demo_batches(now):
        source = container.tenancy.input_named(input_name)
        if source is None:
            continue  # a custom config without the demo inputs
        body = msgspec.json.encode(batch)
        items.append(Accepted(source, observe(body, source, now), body))
    outcomes = container.ingest.ingest(items)
    applied = sum(1 for o in outcomes if o.status == "applied")
    return f"{applied} demo batches applied, {len(outcomes) - applied} already present"
