"""Secrets out of sight (SEC-3): a URL with its password and its secret-looking query
parameters masked, and the same done to any text (a log line, an error) that may hold one.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, unquote_plus, urlsplit, urlunsplit

__all__ = ["MASK", "is_secret_name", "redact_text", "redact_url", "url_secrets"]

# What stands for a secret part of a URL (its password, a query token).
MASK = "***"

# A query parameter whose name holds one of these is a secret (`token`, `access_token`,
# `api_key`, `X-Amz-Signature`, `sig`, `password` ...).
_SECRET_WORDS = ("token", "secret", "key", "pass", "pwd", "sig", "auth", "credential", "session")
_SECRET_NAME = "|".join(_SECRET_WORDS)
# `scheme://user:password@` in any text.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]*):[^@\s/]*@")
# `?token=...` / `&api_key=...` in any text; `password=...` anywhere (libpq conninfo).
_QUERY = re.compile(rf"(?i)([?&;][^=&\s\"'?#]*(?:{_SECRET_NAME})[^=&\s\"'?#]*=)[^&\s\"'#]+")
_CONNINFO = re.compile(r"(?i)\b(password\s*=\s*)('[^']*'|\S+)")


def is_secret_name(name: str) -> bool:
    """Whether a query parameter of this name holds a secret."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return None
    return parts


def url_secrets(url: str) -> bool:
    """Whether the URL holds a password or a secret-looking query parameter."""
    parts = _split(url)
    if parts is None:
        return _USERINFO.search(url) is not None or _QUERY.search(url) is not None
    if parts.password:
        return True
    return any(is_secret_name(k) for k, _ in parse_qsl(parts.query, keep_blank_values=True))


def redact_url(url: str) -> str:
    """The URL with its password and secret query parameters replaced by `***`; anything
    else kept as written: `https://hooks:***@example.com/in?token=***&v=2`."""
    parts = _split(url)
    if parts is None:
        return redact_text(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:{MASK}@{hostport}"
    query = "&".join(_masked_pair(pair) for pair in parts.query.split("&"))
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _masked_pair(pair: str) -> str:
    name, eq, _ = pair.partition("=")
    return f"{name}={MASK}" if eq and is_secret_name(unquote_plus(name)) else pair


def redact_text(text: str) -> str:
    """Any URL passwords, secret query parameters and `password=` settings in free text
    (a log line, an error message) replaced by `***`."""
    text = _USERINFO.sub(rf"\1:{MASK}@", text)
    text = _QUERY.sub(rf"\1{MASK}", text)
    return _CONNINFO.sub(rf"\1{MASK}", text)
