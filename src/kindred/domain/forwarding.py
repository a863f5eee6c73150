"""Outputs and connections (TEN-3, ENR-2, ENR-4): where enriched batches and audience
membership changes go, and with which settings. The same documents come from the config
file and from the admin API."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import parse_qsl, unquote_plus, urlsplit, urlunsplit

import msgspec

from kindred.domain.errors import ConfigError
from kindred.domain.identities import canonical_identity_type
from kindred.domain.redact import MASK, redact_url, url_secrets

__all__ = [
    "ENV_REFERENCE",
    "SEALED",
    "SECRET_MASK",
    "AudienceConnection",
    "EventConnection",
    "OutputDef",
    "OutputKind",
    "check_audience_connection",
    "check_event_connection",
    "check_output",
    "keep",
    "masked",
    "secret_fields",
    "unmasked",
]

OutputKind = Literal["webhook", "jsonl", "nats"]

# An output's secrets (SEC-3): `auth_header`, and `url` when it holds a password or a
# secret-looking query parameter. Written `env:NAME`, a secret is read from the environment
# when the output sends; kept in the store, it is encrypted (`enc:...`); shown, masked.
ENV_REFERENCE = "env:"
SEALED = "enc:"
SECRET_MASK = "********"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    # RET-3: each subject erased in a scope this output's connections serve is sent one
    # erasure message (`"type": "erasure"`) through the outbox.
    accepts_erasures: bool = False


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
    # One variation of the audience's A/B test (AUD-8), its control "Control" included:
    # only the members in it, under the name `[External Name] - [Variation]`. None: the
    # full audience.
    variation: str | None = None


def keep(value: str, allow: list[str] | None, block: list[str]) -> bool:
    """A filter's verdict on one name or key."""
    return (allow is None or value in allow) and value not in block


def secret_fields(output: OutputDef) -> dict[str, str]:
    """The output's settings that hold a secret as written (not an `env:` reference)."""
    found = {}
    if output.auth_header and not output.auth_header.startswith(ENV_REFERENCE):
        found["auth_header"] = output.auth_header
    url = output.url
    if url and not url.startswith(ENV_REFERENCE) and (url.startswith(SEALED) or url_secrets(url)):
        found["url"] = url
    return found


def masked(output: OutputDef) -> OutputDef:
    """The output as the admin API shows it: `auth_header` as `********`, the URL with
    `***` for its password and tokens; `env:` references as written."""
    secrets = secret_fields(output)
    if not secrets:
        return output
    url = secrets.get("url")
    return msgspec.structs.replace(
        output,
        auth_header=SECRET_MASK if "auth_header" in secrets else output.auth_header,
        url=output.url
        if url is None
        else (SECRET_MASK if url.startswith(SEALED) else redact_url(url)),
    )


def unmasked(new: OutputDef, old: OutputDef | None) -> OutputDef:
    """A saved output whose secrets were sent back masked (as GET showed them) keeps the
    stored secrets: `********` stands for the stored `auth_header`; in the URL, `***` for
    the stored password (same user) or the stored value of the same query parameter."""
    where = f"outputs[{new.name!r}]"
    auth_header = new.auth_header
    if auth_header == SECRET_MASK:
        if old is None or not old.auth_header:
            raise ConfigError(f"{where}.auth_header: no stored secret for the mask to keep")
        auth_header = old.auth_header
    url = new.url
    if url is not None and (MASK in url or url == SECRET_MASK):
        url = _unmasked_url(url, old.url if old else None, where)
    return msgspec.structs.replace(new, auth_header=auth_header, url=url)


def _unmasked_url(url: str, old: str | None, where: str) -> str:
    if old is not None and (url == redact_url(old) or url == SECRET_MASK):
        return old
    if url == SECRET_MASK or old is None:
        raise ConfigError(f"{where}.url: no stored secret for the mask to keep")
    new_parts, old_parts = urlsplit(url), urlsplit(old)
    netloc = new_parts.netloc
    if new_parts.password == MASK:
        if old_parts.password is None or old_parts.username != new_parts.username:
            raise ConfigError(f"{where}.url: no stored password of this user for '***' to keep")
        old_userinfo = old_parts.netloc.rpartition("@")[0]
        netloc = f"{old_userinfo}@{new_parts.netloc.rpartition('@')[2]}"
    stored = dict(parse_qsl(old_parts.query, keep_blank_values=True))
    pairs = []
    for pair in new_parts.query.split("&") if new_parts.query else []:
        name, eq, value = pair.partition("=")
        if eq and value == MASK:
            original = next(
                (p for p in old_parts.query.split("&") if p.partition("=")[0] == name), None
            )
            if original is None or unquote_plus(name) not in stored:
                raise ConfigError(f"{where}.url: no stored value of {name!r} for '***' to keep")
            pairs.append(original)
        else:
            pairs.append(pair)
    return urlunsplit(
        (new_parts.scheme, netloc, new_parts.path, "&".join(pairs), new_parts.fragment)
    )


def check_output(output: OutputDef) -> OutputDef:
    where = f"outputs[{output.name!r}]"
    _check_name(output.name, where)
    if output.kind in ("webhook", "nats") and not output.url:
        raise ConfigError(f"{where}.url: a {output.kind} output needs a url")
    for key, value in (("url", output.url), ("auth_header", output.auth_header)):
        reference = (value or "").startswith(ENV_REFERENCE)
        if reference and not _ENV_NAME.match((value or "").removeprefix(ENV_REFERENCE)):
            raise ConfigError(f"{where}.{key}: write an environment reference as env:NAME")
    # (A stored secret that could not be decrypted stays `enc:...`; its sends fail.)
    url = output.url or ""
    if output.kind == "webhook" and not url.startswith(
        ("http://", "https://", ENV_REFERENCE, SEALED)
    ):
        raise ConfigError(f"{where}.url: must start with http:// or https://")
    if output.kind == "nats" and not output.subject:
        raise ConfigError(f"{where}.subject: a nats output needs a subject")
    if output.kind == "jsonl" and not output.directory:
        raise ConfigError(f"{where}.directory: a jsonl output needs a directory")
    if output.kind == "webhook" and url.startswith(("http://", "https://")):
        _check_http_url(url, f"{where}.url")
    if output.auth_header is not None and ":" not in output.auth_header:
        raise ConfigError(f"{where}.auth_header: write it as 'Name: value'")
    if output.auth_header is not None and any(c in output.auth_header for c in "\r\n\0"):
        # One header: a line break would add headers of the sender's choosing.
        raise ConfigError(f"{where}.auth_header: one header, without line breaks")
    if output.timeout_s <= 0 or output.batch_size < 1 or output.rotate_bytes < 1:
        raise ConfigError(f"{where}: timeout_s, batch_size and rotate_bytes must be positive")
    return output


def _check_http_url(url: str, where: str) -> None:
    """A webhook URL names a host, and a port in range when it names one."""
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError past 65535
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not parts.hostname:
        raise ConfigError(f"{where}: names no host")
    if port == 0:
        raise ConfigError(f"{where}: port 0 names no port")


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


# The web UI's form for a new output or connection is at `/ui/outputs/new`
# (`/ui/connections/new`): one of that name could not be opened there.
_RESERVED_NAMES = frozenset({"new"})


def _check_name(name: str, where: str) -> None:
    if not name.strip() or "/" in name:
        raise ConfigError(f"{where}.name: must be non-empty, without '/'")
    if name in _RESERVED_NAMES:
        raise ConfigError(f"{where}.name: {name!r} is reserved (the web UI's form for a new one)")
