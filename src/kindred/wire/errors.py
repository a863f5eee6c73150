"""msgspec's decode errors as InvalidBatch, with the field path in Kindred's spelling."""

from __future__ import annotations

import re

import msgspec

from kindred.domain.errors import InvalidBatch

__all__ = ["as_invalid_batch"]

_PATH = re.compile(r"(.*) - at `\$\.?(.*)`$")


def as_invalid_batch(exc: Exception, prefix: str = "") -> InvalidBatch:
    """An InvalidBatch from a msgspec error or another InvalidBatch, with the path prefixed
    (`[3].` for the fourth batch of a bulk request)."""
    if isinstance(exc, InvalidBatch):
        return InvalidBatch(exc.reason, _join(prefix, exc.path))
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return InvalidBatch(f"body is not valid JSON: {exc}", prefix.rstrip("."))
    match = _PATH.match(str(exc))
    if match is None:
        return InvalidBatch(str(exc), prefix.rstrip("."))
    return InvalidBatch(match.group(1), _join(prefix, match.group(2)))


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix.rstrip(".")
    return prefix + path if not path.startswith("[") else prefix.rstrip(".") + path
