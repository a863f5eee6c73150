"""Outputs and connections (TEN-3, ENR-2, ENR-4): where enriched batches and audience
membership changes go, and with which settings. The same documents come from the config
file and from the admin API."""

from __future__ import annotations

from typing import Literal

import msgspec

from kindred.domain.errors import ConfigError
from kindred.domain.identities import canonical_identity_type

__all__ = [
    "AudienceConnection",
    "EventConnection",
    "OutputDef",
    "OutputKind",
    "check_audience_connection",
    "check_event_connection",
    "check_output",
    "keep",
]

OutputKind = Literal["webhook", "jsonl", "nats"]


class _Doc(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Unknown keys are refused: a typo never falls back to a default silently."""


class OutputDef(_Doc, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    kind: OutputKind
    # webhook: POST a JSON array of messages to `url`, with `auth_header` ("Name: value").
    url: str | None = None
    auth_header: str | None = None
    timeout_s: float = 10.0
    # Messages per request (webhook), per write (jsonl) or per flush (nats).
    batch_size: int = 100
    # jsonl: files under `directory`, a new one once a file passes `rotate_bytes`.
    directory: str | None = None
    rotate_bytes: int = 64 * 1024 * 1024
    # nats: JetStream `subject` on `url` (nats://host:port); the stream is created when
    # `stream` is given and does not exist.
    subject: str | None = None
    stream: str | None = None


class EventConnection(_Doc, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An input's batches, enriched, to an output (ENR-1, ENR-2)."""

    name: str
    input: str
    output: str
    # Filters: an allow list (None: everything) and a block list, on event names, event
    # types (`custom_event`, `screen_view`, ...) and attribute keys (user attributes and
    # event custom attributes).
    event_names_allow: list[str] | None = None
    event_names_block: list[str] = msgspec.field(default_factory=list)
    event_types_allow: list[str] | None = None
    event_types_block: list[str] = msgspec.field(default_factory=list)
    attributes_allow: list[str] | None = None
    attributes_block: list[str] = msgspec.field(default_factory=list)
    # Forward the user's IP address (the batch's, else the profile's last known one).
    enrich_ip: bool = True
    # Only users who consented to this GDPR purpose (None: everyone).
    consent_purpose: str | None = None
    # Audience entered/exited changes of the input's workspace, as ordinary events (BEY-5).
    audience_events: bool = False
    enabled: bool = True


class AudienceConnection(_Doc, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An audience's membership adds and removes to an output (ENR-4)."""

    name: str
    audience_id: int
    output: str
    # The identity types the output accepts: one message per identity of these types.
    identity_types: list[str]
    # User attributes shared with each message (none by default).
    shared_attributes: list[str] = msgspec.field(default_factory=list)
    enabled: bool = True


def keep(value: str, allow: list[str] | None, block: list[str]) -> bool:
    """A filter's verdict on one name or key."""
    return (allow is None or value in allow) and value not in block


def check_output(output: OutputDef) -> OutputDef:
    where = f"outputs[{output.name!r}]"
    _check_name(output.name, where)
    if output.kind in ("webhook", "nats") and not output.url:
        raise ConfigError(f"{where}.url: a {output.kind} output needs a url")
    if output.kind == "webhook" and not (output.url or "").startswith(("http://", "https://")):
        raise ConfigError(f"{where}.url: must start with http:// or https://")
    if output.kind == "nats" and not output.subject:
        raise ConfigError(f"{where}.subject: a nats output needs a subject")
    if output.kind == "jsonl" and not output.directory:
        raise ConfigError(f"{where}.directory: a jsonl output needs a directory")
    if output.auth_header is not None and ":" not in output.auth_header:
        raise ConfigError(f"{where}.auth_header: write it as 'Name: value'")
    if output.timeout_s <= 0 or output.batch_size < 1 or output.rotate_bytes < 1:
        raise ConfigError(f"{where}: timeout_s, batch_size and rotate_bytes must be positive")
    return output


def check_event_connection(
    connection: EventConnection, inputs: set[str], outputs: set[str]
) -> EventConnection:
    where = f"event_connections[{connection.name!r}]"
    _check_name(connection.name, where)
    if connection.input not in inputs:
        raise ConfigError(f"{where}.input: no input named {connection.input!r}")
    if connection.output not in outputs:
        raise ConfigError(f"{where}.output: no output named {connection.output!r}")
    return connection


def check_audience_connection(
    connection: AudienceConnection, outputs: set[str]
) -> AudienceConnection:
    where = f"audience_connections[{connection.name!r}]"
    _check_name(connection.name, where)
    if connection.output not in outputs:
        raise ConfigError(f"{where}.output: no output named {connection.output!r}")
    if not connection.identity_types:
        raise ConfigError(f"{where}.identity_types: name at least one identity type")
    canonical = []
    for name in connection.identity_types:
        found = canonical_identity_type(name)
        if found is None:
            raise ConfigError(f"{where}.identity_types: unknown identity type {name!r}")
        canonical.append(found)
    return msgspec.structs.replace(connection, identity_types=canonical)


def _check_name(name: str, where: str) -> None:
    if not name.strip() or "/" in name:
        raise ConfigError(f"{where}.name: must be non-empty, without '/'")
