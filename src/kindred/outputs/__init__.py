"""Output transports (ENR-3): HTTP webhook, JSON-lines files, NATS JetStream."""

from __future__ import annotations

from kindred.domain.forwarding import OutputDef
from kindred.ports import Sink

__all__ = ["make_sink"]


def make_sink(output: OutputDef) -> Sink:
    """A new transport for one lane (each lane has its own: no lane waits on another's)."""
    if output.kind == "webhook":
        from kindred.outputs.webhook import WebhookSink  # noqa: PLC0415 - chosen by config

        return WebhookSink(output)
    if output.kind == "jsonl":
        from kindred.outputs.jsonl import JsonlSink  # noqa: PLC0415 - chosen by config

        return JsonlSink(output)
    from kindred.outputs.nats import NatsSink  # noqa: PLC0415 - chosen by config

    return NatsSink(output)
