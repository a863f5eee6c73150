"""Per-attribute expiry (RET-4, BEY-7): a workspace gives attribute keys, or glob patterns of
keys (`pii_*`), a time to live. A value expires its TTL after it was set, that is after the
`ts_ms` the batch that set it wrote into its entry (the batch's own time, never later than
its arrival); a later batch setting the key again writes a new `ts_ms` and so starts a new
TTL. An expired value is gone from the instant it expires: `without_expired` is the profile
as every read sees it at an instant, and the same profile stored is what the expiry sweep
writes.

Only a workspace's own user attributes expire: calculated attribute values (their
definition governs them) and account-level attributes (shared by every workspace of the
account, so no one workspace's rule owns them) are left alone.

Pure: no clock, no I/O; the caller gives the instant.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

import msgspec

from kindred.domain.changes import Change
from kindred.domain.errors import ConfigError
from kindred.domain.profile import AttributeEntry, Profile, WorkspaceProfile

__all__ = [
    "EXPIRED_CHANGE",
    "AttributeTtl",
    "TtlRules",
    "check_pattern",
    "due_by_expiry",
    "expires_at",
    "is_expired",
    "next_expiry",
    "parse_duration_ms",
    "parse_rules",
    "without_expired",
]

EXPIRED_CHANGE = "attribute_expired"  # the kind of the Change an expired value makes

_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"(\d{1,9})([smhdw])")
# A pattern is a key with `*` (any run of characters) and `?` (one character); `[` and `]`
# are refused so that every store (and fnmatch) reads the pattern the same way.
_MAX_PATTERN = 256


class AttributeTtl(msgspec.Struct, frozen=True):
    pattern: str
    ttl_ms: int


class TtlRules(msgspec.Struct, frozen=True):
    """A workspace's attribute TTLs. A key matched by several rules has the shortest."""

    rules: tuple[AttributeTtl, ...] = ()

    def ttl_ms(self, key: str) -> int | None:
        return _ttl_of(self, key)


@functools.lru_cache(maxsize=65_536)
def _ttl_of(rules: TtlRules, key: str) -> int | None:
    found = [r.ttl_ms for r in rules.rules if _compiled(r.pattern).fullmatch(key)]
    return min(found) if found else None


@functools.lru_cache(maxsize=4_096)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(_part(c) for c in pattern), re.DOTALL)


def _part(char: str) -> str:
    if char == "*":
        return ".*"
    if char == "?":
        return "."
    return re.escape(char)


def parse_duration_ms(text: str, where: str) -> int:
    """`30d`, `12h`, `90m`, `45s`, `2w` or a sum of them (`1d12h`): milliseconds, > 0."""
    cleaned = text.strip().lower()
    parts = _DURATION.findall(cleaned)
    if not cleaned or "".join(n + u for n, u in parts) != cleaned:
        raise ConfigError(
            f"{where}: {text!r} is not a duration (a number with s, m, h, d or w: '30d', '12h')"
        )
    total = sum(int(n) * _UNITS_MS[u] for n, u in parts)
    if total <= 0:
        raise ConfigError(f"{where}: {text!r} must be longer than zero")
    return total


def check_pattern(pattern: str, where: str) -> None:
    if not pattern.strip():
        raise ConfigError(f"{where}: an attribute key or pattern must not be empty")
    if len(pattern) > _MAX_PATTERN:
        raise ConfigError(f"{where}: {pattern[:40]!r}... is longer than {_MAX_PATTERN}")
    if "[" in pattern or "]" in pattern:
        raise ConfigError(
            f"{where}: {pattern!r}: only '*' and '?' are wildcards ('[' and ']' are refused)"
        )


def parse_rules(table: Mapping[str, str], where: str) -> TtlRules:
    """The rules of a settings table `{pattern = duration}`; ConfigError naming the key."""
    rules = []
    for pattern, duration in table.items():
        check_pattern(pattern, f"{where}.{pattern!r}")
        rules.append(AttributeTtl(pattern, parse_duration_ms(duration, f"{where}.{pattern!r}")))
    return TtlRules(tuple(rules))


def expires_at(rules: TtlRules, key: str, entry: AttributeEntry) -> int | None:
    """When the entry's value expires; None for a tombstone or a key without a TTL."""
    if entry.deleted:
        return None
    ttl = rules.ttl_ms(key)
    return None if ttl is None else entry.ts_ms + ttl


def is_expired(rules: TtlRules, key: str, entry: AttributeEntry, now_ms: int) -> bool:
    """Expired from its expiry instant on (at it, it is gone)."""
    at = expires_at(rules, key, entry)
    return at is not None and at <= now_ms


def _expired_keys(workspace: WorkspaceProfile, rules: TtlRules, now_ms: int) -> list[str]:
    return [
        key
        for key, entry in workspace.attributes.items()
        if key not in workspace.calculated and is_expired(rules, key, entry, now_ms)
    ]


def without_expired(
    profile: Profile, rules_of: Mapping[int, TtlRules], now_ms: int
) -> tuple[Profile, list[Change]]:
    """The profile without the values expired at `now_ms` (the very same object when none
    has), and a change of kind `attribute_expired` for each value gone."""
    if not rules_of:
        return profile, []
    changes: list[Change] = []
    workspaces: dict[int, WorkspaceProfile] | None = None
    for workspace_id, workspace in profile.workspaces.items():
        rules = rules_of.get(workspace_id)
        if rules is None:
            continue
        gone = _expired_keys(workspace, rules, now_ms)
        if not gone:
            continue
        if workspaces is None:
            workspaces = dict(profile.workspaces)
        kept = {k: e for k, e in workspace.attributes.items() if k not in gone}
        workspaces[workspace_id] = msgspec.structs.replace(workspace, attributes=kept)
        changes.extend(
            Change(
                kind=EXPIRED_CHANGE,
                key=key,
                workspace_id=workspace_id,
                old=workspace.attributes[key].value,
            )
            for key in gone
        )
    if workspaces is None:
        return profile, []
    return msgspec.structs.replace(profile, workspaces=workspaces), changes


def next_expiry(profile: Profile, rules_of: Mapping[int, TtlRules], now_ms: int) -> int | None:
    """The earliest instant after `now_ms` one of the profile's values expires."""
    earliest: int | None = None
    for workspace_id, workspace in profile.workspaces.items():
        rules = rules_of.get(workspace_id)
        if rules is None:
            continue
        for key, entry in workspace.attributes.items():
            if key in workspace.calculated:
                continue
            at = expires_at(rules, key, entry)
            if at is not None and at > now_ms and (earliest is None or at < earliest):
                earliest = at
    return earliest


def due_by_expiry(profile: Profile, rules_of: Mapping[int, TtlRules], now_ms: int) -> Profile:
    """The profile due (for the audience scheduler) no later than its next value's expiry,
    so that memberships reading that value are evaluated again when it expires. The due
    time only comes forward, as `attributes.active.scheduled` brings it."""
    if not rules_of:
        return profile
    at = next_expiry(profile, rules_of, now_ms)
    current = profile.audience_due_ms
    if at is None or (current is not None and current <= at):
        return profile
    return msgspec.structs.replace(profile, audience_due_ms=at)
