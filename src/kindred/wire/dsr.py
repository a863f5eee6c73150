"""OpenDSR wire formats (reference §6): a v3 request body (and v1's `opengdpr_requests`
shape) read into what a data subject request needs, every problem named; the status,
creation and discovery bodies; the error body `{code, message, errors[]}`.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec

from kindred.domain.dsr import DSR_IDENTITY_TYPES, REGULATIONS, REQUEST_TYPES, DsrRequest
from kindred.domain.receipts import SignedReceipt
from kindred.wire.limits import INT64_MAX, INT64_MIN, check_json_body

__all__ = [
    "DOMAIN",
    "DsrProblem",
    "ParsedRequest",
    "discovery_body",
    "dsr_error_body",
    "iso_time",
    "parse_request",
    "receipt_body",
    "status_body",
]

DOMAIN = "opendsr.mparticle.com"
MAX_IDENTITIES = 50
MAX_CALLBACKS = 10
_MAX_URL = 2048
_MAX_TEXT = 256
_EXTENSION_TYPES = (
    "mpid",
    *(t for t in DSR_IDENTITY_TYPES if t.startswith(("other", "mobile", "phone"))),
)
_TOP_TYPES = tuple(t for t in DSR_IDENTITY_TYPES if t not in _EXTENSION_TYPES)


class DsrProblem(Exception):
    """A request body refused (400), with every problem found."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        # (reason, message)
        self.problems = problems
        super().__init__("; ".join(message for _, message in problems))


class ParsedRequest(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    regulation: str
    request_type: str
    submitted_ms: int
    identities: dict[str, str]
    mpid: int | None
    group_id: str | None
    callback_urls: list[str]
    api_version: str
    skip_waiting_period: bool


def parse_request(body: bytes, *, v1: bool = False) -> ParsedRequest:
    """The request a body asks for; DsrProblem naming each field that is wrong."""
    problems: list[tuple[str, str]] = []
    try:
        check_json_body(body)
        raw = msgspec.json.decode(body)
    except Exception as exc:
        raise DsrProblem([("invalid_json", f"the body is not valid JSON: {exc}")]) from None
    if not isinstance(raw, dict):
        raise DsrProblem([("invalid_json", "the body must be a JSON object")])

    def text(name: str, *, required: bool = True) -> str | None:
        value = raw.get(name)
        if value is None:
            if required:
                problems.append(("missing_field", f"{name} is required"))
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > _MAX_TEXT:
            problems.append(("invalid_field", f"{name} must be a non-empty string"))
            return None
        return value.strip()

    request_id = text("subject_request_id")
    if request_id is not None:
        try:
            request_id = str(uuid.UUID(request_id))
        except ValueError:
            problems.append(("invalid_field", "subject_request_id must be a UUID"))
            request_id = None
    regulation = text("regulation", required=not v1) or ("gdpr" if v1 else None)
    if regulation is not None and regulation.lower() not in REGULATIONS:
        problems.append(("invalid_field", f"regulation must be one of {', '.join(REGULATIONS)}"))
    request_type = text("subject_request_type")
    if request_type is not None and request_type.lower() not in REQUEST_TYPES:
        problems.append(
            ("invalid_field", f"subject_request_type must be one of {', '.join(REQUEST_TYPES)}")
        )
    submitted_ms = _instant(text("submitted_time"), problems)
    api_version = text("api_version", required=False) or ("1.0" if v1 else "3.0")
    group_id = text("group_id", required=False)
    callbacks, extension, skip = _options(raw, problems)
    given = (
        _v1_identities(raw, extension, problems) if v1 else _v3_identities(raw, extension, problems)
    )
    identities, mpid = _subject(given, problems)
    if problems:
        raise DsrProblem(problems)
    assert request_id
    assert regulation
    assert request_type
    assert submitted_ms is not None
    return ParsedRequest(
        request_id=request_id,
        regulation=regulation.lower(),
        request_type=request_type.lower(),
        submitted_ms=submitted_ms,
        identities=identities,
        mpid=mpid,
        group_id=group_id,
        callback_urls=list(callbacks),
        api_version=api_version,
        skip_waiting_period=skip,
    )


def _options(
    raw: dict[str, Any], problems: list[tuple[str, str]]
) -> tuple[list[str], dict[str, Any], bool]:
    """The callback URLs, the `opendsr.mparticle.com` extension and its skip flag."""
    callbacks = raw.get("status_callback_urls") or []
    if not isinstance(callbacks, list):
        problems.append(("invalid_field", "status_callback_urls must be a list of URLs"))
        callbacks = []
    for n, url in enumerate(callbacks):
        if not _callback_url(url):
            problems.append(
                (
                    "invalid_callback_url",
                    f"status_callback_urls[{n}] must be an http or https URL with a host",
                )
            )
    if len(callbacks) > MAX_CALLBACKS:
        problems.append(("invalid_field", f"at most {MAX_CALLBACKS} status_callback_urls"))
    extensions = raw.get("extensions")
    extension = extensions.get(DOMAIN) if isinstance(extensions, dict) else None
    if extension is not None and not isinstance(extension, dict):
        problems.append(("invalid_field", f"extensions.{DOMAIN} must be an object"))
        extension = None
    extension = extension or {}
    skip = extension.get("skip_waiting_period", False)
    if not isinstance(skip, bool):
        problems.append(("invalid_field", "skip_waiting_period must be true or false"))
        skip = False
    return callbacks, extension, skip


def _callback_url(url: object) -> bool:
    if not isinstance(url, str) or len(url) > _MAX_URL or any(c.isspace() for c in url):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host)


def _v3_identities(
    raw: dict[str, Any], extension: dict[str, Any], problems: list[tuple[str, str]]
) -> list[tuple[str, Any, str]]:
    """(type, value, where) of `subject_identities` and the extension's, as given."""
    found: list[tuple[str, Any, str]] = []
    for where, source, allowed in (
        ("subject_identities", raw.get("subject_identities"), _TOP_TYPES),
        (f"extensions.{DOMAIN}.subject_identities", extension.get("subject_identities"), None),
    ):
        if source is None:
            continue
        if not isinstance(source, dict):
            problems.append(("invalid_field", f"{where} must be an object keyed by type"))
            continue
        for id_type, entry in source.items():
            if allowed is not None and id_type not in allowed:
                reason = (
                    f"{id_type!r} goes in extensions.{DOMAIN}.subject_identities"
                    if id_type in _EXTENSION_TYPES
                    else f"unknown identity type {id_type!r}"
                )
                problems.append(("invalid_identity", f"{where}: {reason}"))
                continue
            if not isinstance(entry, dict):
                problems.append(("invalid_identity", f"{where}.{id_type} must be an object"))
                continue
            encoding = entry.get("encoding", "raw")
            if encoding != "raw":
                problems.append(("invalid_identity", f"{where}.{id_type}: only raw encoding"))
                continue
            found.append((id_type, entry.get("value"), f"{where}.{id_type}"))
    return found


def _v1_identities(
    raw: dict[str, Any], extension: dict[str, Any], problems: list[tuple[str, str]]
) -> list[tuple[str, Any, str]]:
    found: list[tuple[str, Any, str]] = []
    entries = raw.get("subject_identities") or []
    extra = extension.get("identities") or []
    if not isinstance(entries, list) or not isinstance(extra, list):
        problems.append(("invalid_field", "subject_identities must be an array"))
        return found
    for n, entry in enumerate([*entries, *extra]):
        if not isinstance(entry, dict):
            problems.append(("invalid_identity", f"subject_identities[{n}] must be an object"))
            continue
        if entry.get("identity_format", "raw") != "raw":
            problems.append(("invalid_identity", f"subject_identities[{n}]: only raw format"))
            continue
        found.append((str(entry.get("identity_type")), entry.get("identity_value"), f"[{n}]"))
    mpids = extension.get("mpids") or []
    if isinstance(mpids, list):
        found.extend(("mpid", m, f"mpids[{n}]") for n, m in enumerate(mpids))
    return found


def _subject(
    given: list[tuple[str, Any, str]], problems: list[tuple[str, str]]
) -> tuple[dict[str, str], int | None]:
    identities: dict[str, str] = {}
    mpids: list[int] = []
    for id_type, value, where in given:
        if id_type == "mpid":
            mpid = _mpid(value)
            if mpid is None:
                problems.append(("invalid_identity", f"{where}: an MPID is a 64-bit integer"))
            else:
                mpids.append(mpid)
            continue
        canonical = DSR_IDENTITY_TYPES.get(id_type)
        if canonical is None:
            problems.append(("invalid_identity", f"{where}: unknown identity type {id_type!r}"))
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > _MAX_TEXT:
            problems.append(("invalid_identity", f"{where}: value must be a non-empty string"))
            continue
        if canonical in identities and identities[canonical] != value.strip():
            problems.append(("invalid_identity", f"{where}: one value per identity type"))
            continue
        identities[canonical] = value.strip()
    if len(given) > MAX_IDENTITIES:
        problems.append(("too_many_identities", f"at most {MAX_IDENTITIES} subject identities"))
    if mpids and (identities or len(mpids) > 1):
        problems.append(("mpid_not_alone", "an mpid must be the only subject identity"))
    if not mpids and not identities and not problems:
        problems.append(("missing_field", "subject_identities names no identity"))
    return identities, (mpids[0] if len(mpids) == 1 and not identities else None)


def _mpid(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        mpid = int(value) if isinstance(value, int | str) else None
    except ValueError:
        return None
    if mpid is None or mpid == 0 or not INT64_MIN <= mpid <= INT64_MAX:
        return None
    return mpid


def _instant(text: str | None, problems: list[tuple[str, str]]) -> int | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        problems.append(("invalid_field", "submitted_time must be an ISO 8601 time"))
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ms = int(moment.timestamp() * 1000)
    if ms < 0:
        problems.append(("invalid_field", "submitted_time must be after 1970"))
        return None
    return ms


def iso_time(ms: int) -> str:
    """Epoch milliseconds as OpenDSR writes times: `2021-11-01T15:00:00Z`."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encoded_request(request: DsrRequest) -> str:
    return base64.b64encode(request.raw).decode()


def created_body(request: DsrRequest, expected_ms: int) -> dict[str, Any]:
    return {
        "expected_completion_time": iso_time(expected_ms),
        "received_time": iso_time(request.received_ms),
        "encoded_request": encoded_request(request),
        "subject_request_id": request.request_id,
        "controller_id": str(request.workspace_id),
    }


def status_body(
    request: DsrRequest,
    expected_ms: int,
    results_url: str | None,
    receipt_url: str | None = None,
    erasure_messages: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The status object of a request (`results_url` for access and portability once
    completed). A completed erasure's receipt is named in `extensions`, under
    `opendsr.mparticle.com`: its id, where to read it, the counts removed by part, and the
    delivery status of each erasure message sent to an output that accepts erasures."""
    extensions: dict[str, Any] | None = None
    if request.receipt_id is not None:
        extensions = {
            DOMAIN: {
                "receipt_id": request.receipt_id,
                "receipt_url": receipt_url,
                "removed": msgspec.to_builtins(request.summary) if request.summary else {},
                "erasure_messages": erasure_messages or [],
            }
        }
    body: dict[str, Any] = {
        "controller_id": str(request.workspace_id),
        "expected_completion_time": iso_time(expected_ms),
        "subject_request_id": request.request_id,
        "group_id": request.group_id,
        "request_status": request.status,
        "api_version": request.api_version,
        "results_url": results_url,
        "extensions": extensions,
    }
    return body


def discovery_body(certificate: str | None = None) -> dict[str, Any]:
    """`processor_certificate`: the PEM of the certificate that signs callbacks and
    receipts."""
    types = [*_TOP_TYPES, "mpid", *(t for t in _EXTENSION_TYPES if t != "mpid")]
    return {
        "api_version": "3.0",
        "supported_identities": [{"identity_type": t, "identity_format": "raw"} for t in types],
        "supported_subject_request_types": list(REQUEST_TYPES),
        "processor_certificate": certificate,
    }


def receipt_body(signed: SignedReceipt) -> dict[str, Any]:
    """A signed receipt as `GET /v3/requests/{id}/receipt` answers it: the receipt read
    out (`receipt`, times also in ISO 8601), and what checks it: `signed_payload` (the
    exact text signed, UTF-8), `signature`, `algorithm`, `certificate`,
    `certificate_sha256`."""
    receipt = signed.receipt()
    shown: dict[str, Any] = msgspec.to_builtins(receipt)
    shown["erased_time"] = iso_time(receipt.erased_ms)
    shown["subject_mpids"] = [str(m) for m in receipt.subject_mpids]
    return {
        "receipt": shown,
        "signed_payload": signed.payload,
        "signature": signed.signature,
        "algorithm": signed.algorithm,
        "certificate": signed.certificate,
        "certificate_sha256": signed.certificate_sha256,
    }


def dsr_error_body(status: int, problems: list[tuple[str, str]]) -> dict[str, Any]:
    """OpenDSR's error body: `{code, message, errors: [{domain, reason, message}]}`."""
    return {
        "code": status,
        "message": problems[0][1] if problems else "",
        "errors": [
            {"domain": DOMAIN, "reason": reason, "message": message} for reason, message in problems
        ],
    }
