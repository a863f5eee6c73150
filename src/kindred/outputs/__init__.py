"""Output transports (ENR-3): HTTP webhook, JSON-lines files, NATS JetStream."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kindred.domain.errors import ConfigError, DeliveryFailed
from kindred.domain.forwarding import OutputDef
from kindred.ports import Message, Sink

__all__ = ["make_callback_sink", "make_sink"]


def make_callback_sink(timeout_s: float) -> Sink:
    """The transport of data subject requests' status callbacks (one POST per message)."""
    from kindred.outputs.callback import CallbackSink  # noqa: PLC0415 - only when used

    return CallbackSink(timeout_s)


def make_sink(output: OutputDef, resolve: Callable[[OutputDef], OutputDef] | None = None) -> Sink:
    """A new transport for one lane (each lane has its own: no lane waits on another's).
    `resolve`: the output's settings as sent (`env:NAME` references read), asked for when
    the lane first sends; a setting it cannot give fails the send, naming it."""
    if resolve is None:
        return _transport(output)
    return _Resolving(output, resolve)


class _Resolving:
    def __init__(self, output: OutputDef, resolve: Callable[[OutputDef], OutputDef]) -> None:
        self._output = output
        self._resolve = resolve
        self._sink: Sink | None = None

    def send(self, messages: Sequence[Message]) -> None:
        if self._sink is None:
            try:
                resolved = self._resolve(self._output)
            except ConfigError as exc:
                raise DeliveryFailed(str(exc)) from None
            self._sink = _transport(resolved)
        self._sink.send(messages)

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()


def _transport(output: OutputDef) -> Sink:
    if output.kind == "webhook":
        from kindred.outputs.webhook import WebhookSink  # noqa: PLC0415 - chosen by config

        return WebhookSink(output)
    if output.kind == "jsonl":
        from kindred.outputs.jsonl import JsonlSink  # noqa: PLC0415 - chosen by config

        return JsonlSink(output)
    from kindred.outputs.nats import NatsSink  # noqa: PLC0415 - chosen by config

    return NatsSink(output)
