"""What a JSON body may hold at all, whatever route it comes to (SEC-2): how deep it nests,
how large its integers are, which instants its timestamps may name. A body past one of
these is refused with `InvalidBatch` naming the field, before anything else reads it, so
that no decoder, store or page ever meets it.

- Nesting: at most `MAX_JSON_DEPTH` arrays and objects inside one another (the body itself
  is the first level). A batch needs about ten.
- Integers: signed 64-bit (`Int64` in a wire Struct, `check_json_body` for the admin API's
  free-form definitions, `int64_param` for path and query parameters).
- Timestamps of batches and events: `Instant`, epoch milliseconds of the years 1970 to 9999.
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Any

import msgspec

from kindred.domain.errors import InvalidBatch

__all__ = [
    "INSTANT_END_MS",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_JSON_DEPTH",
    "Instant",
    "Int64",
    "check_depth",
    "check_json_body",
    "check_utf8",
    "int64_param",
    "is_instant",
    "limit_param",
    "strict_int",
    "too_deep",
]

MAX_JSON_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# 10000-01-01T00:00:00Z: the first instant a four-digit year cannot name.
INSTANT_END_MS = 253_402_300_800_000

Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
Instant = Annotated[int, msgspec.Meta(ge=0, lt=INSTANT_END_MS)]

_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [1 if b in b"[{" else -1 for b in range(256)]
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]', re.DOTALL)
_MAX_KEY_SHOWN = 40
# The search for the path of a refusal reads at most this many tokens (~40 ms); past them
# it names the innermost field reached, followed by an ellipsis.
_MAX_PATH_TOKENS = 50_000


def too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the body's arrays and objects nest deeper than `limit` (brackets inside
    strings do not count). Costs two C-level passes when the body has more brackets than
    `limit`, nothing more otherwise."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    if b"\\" in body:
        # Escapes paired as a JSON reader pairs them, left to right: what is left of a
        # string holds no quote but its two ends. (Past a backslash outside any string the
        # body is not JSON, and no decoder reads on.)
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside_strings = b"".join(body.split(b'"')[::2])
    brackets = outside_strings.translate(None, _NOT_BRACKETS)
    if len(brackets) <= limit:
        return False
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets))) > limit


def check_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """InvalidBatch naming where the body first nests deeper than `limit`, if it does, or
    its first byte that is not UTF-8 (JSON text is UTF-8; a decoder would fail on it
    only once it reached a string holding it, and not as a decode error)."""
    check_utf8(body)
    if too_deep(body, limit):
        raise InvalidBatch(f"JSON nests deeper than {limit} levels", _deep_path(body, limit))


def check_utf8(body: bytes) -> None:
    """InvalidBatch naming the body's first byte that is not UTF-8, if one is."""
    if body.isascii():
        return
    try:
        body.decode()
    except UnicodeDecodeError as exc:
        raise InvalidBatch(
            f"the body is not UTF-8: byte {exc.start} (0x{body[exc.start]:02x}) does not"
            " belong to a character",
            "body",
        ) from None


def check_json_body(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """For free-form bodies (the admin API's definitions): nesting within `limit` and every
    integer signed 64-bit. A body that is not JSON is left to the caller's decoder."""
    check_depth(body, limit)
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return
    _check_ints(value, "")


_DECIMAL = re.compile(r"-?[0-9]+")


def strict_int(text: str) -> int | None:
    """The integer `text` writes in at most 40 ASCII decimal digits (an optional `-`), else
    None: Python's `int` also takes spaces, `+`, `_` between digits and other scripts'
    digits, with which `1_0` would name 10 (and refuses over 4,300 digits by raising)."""
    return int(text) if len(text) <= 41 and _DECIMAL.fullmatch(text) else None


def int64_param(text: str, name: str) -> int:
    """A path or query parameter as a signed 64-bit integer; InvalidBatch naming it."""
    value = strict_int(text)
    if value is None:
        shown = text if len(text) <= 40 else f"{text[:40]}..."
        raise InvalidBatch(f"{name} {shown!r} is not an integer", name)
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidBatch(f"{name} {text} is not a signed 64-bit integer", name)
    return value


def limit_param(text: str | None, name: str, default: int) -> int:
    """A `limit` query parameter: `default` when absent, else a whole number from 0."""
    if text is None:
        return default
    value = int64_param(text, name)
    if value < 0:
        raise InvalidBatch(f"{name} {text} is not a whole number from 0", name)
    return value


def is_instant(ms: object) -> bool:
    """Epoch milliseconds within the documented range (years 1970 to 9999)."""
    return isinstance(ms, int) and not isinstance(ms, bool) and 0 <= ms < INSTANT_END_MS


def _check_ints(value: Any, path: str) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidBatch(f"{value} is not a signed 64-bit integer", path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_ints(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_ints(item, f"{path}[{index}]")


def _deep_path(body: bytes, limit: int) -> str:
    """The path of the value that opens level `limit + 1` (`a.b[0]`), in the spelling of
    the other refusals. Only called for a body that is too deep."""
    stack: list[list[Any]] = []  # [is_object, key or index]
    last_string: bytes = b""
    for match in itertools.islice(_TOKEN.finditer(body), _MAX_PATH_TOKENS):
        token = match.group()
        if token in (b"{", b"["):
            if len(stack) >= limit:
                return _render(stack) or "$"
            stack.append([token == b"{", None if token == b"{" else 0])
        elif token in (b"}", b"]"):
            if stack:
                stack.pop()
        elif token == b",":
            if stack and not stack[-1][0]:
                stack[-1][1] += 1
        elif token == b":":
            if stack and stack[-1][0]:
                stack[-1][1] = last_string
        else:
            last_string = token
    # Not reached within the tokens read: the innermost field reached, marked as a prefix.
    return f"{_render(stack)}…" if stack else "$"


def _render(stack: list[list[Any]]) -> str:
    path = ""
    for is_object, at in stack:
        if is_object:
            key = _key_text(at) if at is not None else "?"
            path = f"{path}.{key}" if path else key
        else:
            path += f"[{at}]"
    return path


def _key_text(raw: bytes) -> str:
    try:
        key = str(msgspec.json.decode(raw))
    except msgspec.DecodeError:
        key = raw.decode("utf-8", errors="replace").strip('"')
    return key if len(key) <= _MAX_KEY_SHOWN else key[:_MAX_KEY_SHOWN] + "…"
