"""The outputs and connections (declared and made at run time) and the lanes that deliver
to them."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from kindred.audiences.definition import AudienceDef
from kindred.config import Settings
from kindred.config.references import resolve_output
from kindred.domain.forwarding import AudienceConnection, EventConnection, OutputDef
from kindred.domain.tenancy import Tenancy
from kindred.observability import PrometheusMetrics
from kindred.outputs import make_callback_sink, make_sink
from kindred.ports import (
    Clock,
    Store,
)
from kindred.roles import process_name
from kindred.services.forwarding.abtests import AbTestBook
from kindred.services.forwarding.admin import DeliveryAdmin
from kindred.services.forwarding.catalog import OutputCatalog, OutputsAndConnections
from kindred.services.forwarding.delivery import Lane
from kindred.services.forwarding.rendering import Renderer
from kindred.services.forwarding.runner import DeliveryRunner
from kindred.services.privacy.callbacks import (
    CALLBACK_CONNECTION,
    callback_lane,
)

__all__ = ["declared", "forwarding", "lane_factory"]


def forwarding(
    settings: Settings,
    store: Store,
    *,
    tenancy: Tenancy,
    clock: Clock,
    metrics: PrometheusMetrics,
    catalog: OutputCatalog,
    audiences: Callable[[], Mapping[int, AudienceDef]],
    tests: AbTestBook,
) -> tuple[DeliveryAdmin, DeliveryRunner]:
    renderer = Renderer(store, tenancy, audiences, clock, tests=tests.current, retire=tests.retire)
    lanes = lane_factory(settings, store, renderer, clock, metrics)
    runner = DeliveryRunner(
        catalog,
        lanes,
        idle_s=settings.forwarding.idle_s,
        fixed=[callback_lane(settings.privacy.callback_timeout_s)],
    )
    return DeliveryAdmin(store, catalog, clock), runner


def declared(settings: Settings) -> OutputsAndConnections:
    return OutputsAndConnections(
        outputs=list(settings.outputs),
        event_connections=list(settings.event_connections),
        audience_connections=list(settings.audience_connections),
    )


def lane_factory(
    settings: Settings, store: Store, renderer: Renderer, clock: Clock, metrics: PrometheusMetrics
) -> Callable[[EventConnection | AudienceConnection, OutputDef], Lane]:
    forwarding = settings.forwarding
    # Which process holds a connection's lease; unique per process start.
    owner = process_name()

    def make_lane(connection: EventConnection | AudienceConnection, output: OutputDef) -> Lane:
        callbacks = connection.name == CALLBACK_CONNECTION
        return Lane(
            store,
            renderer,
            connection,
            output,
            make_callback_sink(output.timeout_s)
            if callbacks
            else make_sink(output, resolve_output),
            policy=forwarding.retry,
            clock=clock,
            jitter=random.random,
            owner=owner,
            lease_ms=int(forwarding.lease_s * 1000),
            on_outcome=metrics.delivery,
            bury_on_give_up=callbacks,
        )

    return make_lane
