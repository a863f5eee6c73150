"""The forms of outputs and connections (docs/forwarding.md) in the web UI: the documents
their fields make (the admin API's: `domain.forwarding`), the fields a saved one fills in,
and the field a refusal's message names. Pure: no services, no HTTP.

Lists (event names, attribute keys, identity types) are one per line; an empty allow list
allows everything (the document leaves it out). Numbers that are no numbers are passed on
as written, for the document's check to refuse at its field. A checkbox not sent is off.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from kindred.domain.forwarding import AudienceConnection, EventConnection, OutputDef

__all__ = [
    "OUTPUT_FIELDS",
    "audience_connection_document",
    "config_error_field",
    "event_connection_document",
    "form_values",
    "output_document",
]

Posted = Mapping[str, Sequence[str]]

# The fields each kind of output has in its form, in order.
OUTPUT_FIELDS: dict[str, tuple[str, ...]] = {
    "webhook": ("url", "auth_header", "timeout_s", "batch_size"),
    "jsonl": ("directory", "rotate_bytes", "batch_size"),
    "nats": ("url", "subject", "stream", "timeout_s", "batch_size"),
}
_NUMBERS = {"timeout_s": float, "batch_size": int, "rotate_bytes": int}
_EVENT_LISTS = (
    "event_names_allow",
    "event_names_block",
    "event_types_allow",
    "event_types_block",
    "attributes_allow",
    "attributes_block",
)
_INTEGER = re.compile(r"-?[0-9]{1,19}")


def _one(posted: Posted, key: str) -> str:
    values = posted.get(key)
    return values[0].strip() if values else ""


def _checked(posted: Posted, key: str) -> bool:
    return _one(posted, key) == "on"


def _lines(posted: Posted, key: str) -> list[str]:
    return [line.strip() for line in _one(posted, key).splitlines() if line.strip()]


def _number(text: str, kind: type) -> object:
    if kind is int:
        return int(text) if _INTEGER.fullmatch(text) else text
    try:
        return float(text)
    except ValueError:
        return text


def output_document(kind: str, posted: Posted, name: str | None = None) -> dict[str, object]:
    """An output of `kind` as its form says (`name`: the one being edited)."""
    doc: dict[str, object] = {"name": name if name is not None else _one(posted, "name")}
    doc["kind"] = kind
    for key in OUTPUT_FIELDS.get(kind, ()):
        text = _one(posted, key)
        if not text:
            continue  # the default (or, for a required one, refused at its field)
        doc[key] = _number(text, _NUMBERS[key]) if key in _NUMBERS else text
    doc["accepts_erasures"] = _checked(posted, "accepts_erasures")
    return doc


def event_connection_document(posted: Posted, name: str | None = None) -> dict[str, object]:
    doc: dict[str, object] = {
        "name": name if name is not None else _one(posted, "name"),
        "input": _one(posted, "input"),
        "output": _one(posted, "output"),
    }
    for key in _EVENT_LISTS:
        found = _lines(posted, key)
        if found:
            doc[key] = found
    consent = _one(posted, "consent_purpose")
    if consent:
        doc["consent_purpose"] = consent
    doc["enrich_ip"] = _checked(posted, "enrich_ip")
    doc["audience_events"] = _checked(posted, "audience_events")
    doc["enabled"] = _checked(posted, "enabled")
    return doc


def audience_connection_document(posted: Posted, name: str | None = None) -> dict[str, object]:
    audience = _one(posted, "audience_id")
    doc: dict[str, object] = {
        "name": name if name is not None else _one(posted, "name"),
        "audience_id": int(audience) if _INTEGER.fullmatch(audience) else audience,
        "output": _one(posted, "output"),
        "identity_types": [t for line in _lines(posted, "identity_types") for t in _split(line)],
        "shared_attributes": _lines(posted, "shared_attributes"),
        "enabled": _checked(posted, "enabled"),
    }
    variation = _one(posted, "variation")
    if variation:
        doc["variation"] = variation
    return doc


def _split(line: str) -> list[str]:
    return [part.strip() for part in line.split(",") if part.strip()]


def form_values(item: OutputDef | EventConnection | AudienceConnection) -> dict[str, str]:
    """The form's fields filled in from a saved output or connection (an output's secrets
    as given: masked by the caller)."""
    values: dict[str, str] = {}
    for key, value in msgspec.to_builtins(item).items():
        values[key] = _field_text(value)
    return values


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else ""
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


_AT_FIELD = re.compile(r"\]\.(\w+):|\.(\w+): |at `\$\.(\w+)")


def config_error_field(text: str) -> str:
    """The field a refusal names (`outputs['x'].url: ...`, `... - at `$.batch_size``);
    "" when it names none."""
    found = _AT_FIELD.search(text)
    if found is None:
        return ""
    return next(g for g in found.groups() if g)
