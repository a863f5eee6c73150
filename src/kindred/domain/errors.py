"""One exception tree for the whole service; the HTTP adapter maps it to status codes."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

__all__ = [
    "AuthMissing",
    "AuthRejected",
    "ConfigError",
    "Conflict",
    "DeliveryFailed",
    "Gone",
    "InvalidBatch",
    "InvalidToken",
    "KindredError",
    "NotFound",
    "OutcomeUnknown",
    "RateLimited",
    "StoreUnavailable",
    "refuse_duplicates",
]


class KindredError(Exception):
    """Base of every error Kindred raises on purpose."""

    code = "INTERNAL_ERROR"


class InvalidBatch(KindredError):
    """A batch the schema or a guardrail refuses; `path` names the offending field."""

    code = "BAD_REQUEST"

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        self.reason = message
        super().__init__(f"{message} - at `{path}`" if path else message)


class AuthMissing(KindredError):
    code = "UNAUTHORIZED"


class InvalidToken(AuthMissing):
    """A bearer token that is absent, malformed, not signed by this server, or expired."""


class AuthRejected(KindredError):
    code = "FORBIDDEN"


class RateLimited(KindredError):
    code = "TOO_MANY_REQUESTS"

    def __init__(self, retry_after_s: int, scope: str) -> None:
        self.retry_after_s = retry_after_s
        self.scope = scope
        super().__init__(f"rate limit of {scope} exceeded; retry after {retry_after_s} s")


class NotFound(KindredError):
    code = "NOT_FOUND"


class Conflict(KindredError):
    """The request clashes with the state of what it names (a data subject request of the
    same type and subject in progress; a cancellation of one no longer pending)."""

    code = "CONFLICT"


class Gone(KindredError):
    """It was there, and is no more (the results of a data subject request past their
    time)."""

    code = "GONE"


class ConfigError(KindredError):
    """Invalid configuration; the message names the key and the problem."""

    code = "CONFIG_ERROR"


def refuse_duplicates(values: Iterable[Hashable], key: str) -> None:
    """ConfigError naming the key and the first value given twice, if one is."""
    seen: set[Hashable] = set()
    for value in values:
        if value in seen:
            raise ConfigError(f"{key}: {value!r} is used twice")
        seen.add(value)


class StoreUnavailable(KindredError):
    """The store cannot take the request now (busy, gone, or full): come back later. Nothing
    of the request was stored."""

    code = "SERVICE_UNAVAILABLE"
    retry_after_s = 5


class OutcomeUnknown(StoreUnavailable):
    """The store did not confirm the request in time, after it may have received it: the
    request may be stored, and applied. Send it again unchanged: a batch sent again with
    its `source_request_id` is applied once."""

    code = "OUTCOME_UNKNOWN"


class DeliveryFailed(Exception):
    """A send that did not go through. `permanent`: the receiver refused the messages and
    sending them again will not help; `retry_after_s`: what the receiver asked for.

    Not a KindredError: no caller ever sees it; the delivery lane that sent retries,
    faults or dead-letters."""

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after_s = retry_after_s
