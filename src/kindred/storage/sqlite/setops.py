"""The SQLite side of the write-behind unit of work: bulk reads and the flush, on the
writer connection inside its open transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from kindred.audiences.prefilter import Has
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Profile
from kindred.ports import ConcurrentUpdate, Needles
from kindred.storage.codec import (
    decode_profile,
    encode_profile,
)
from kindred.storage.writebehind import PendingWrites, ScopedKey, row_writes

__all__ = ["SqliteSetOps", "needle_sql"]


_CHUNK = 400  # rows per statement: well inside SQLite's limit on bound variables


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqliteSetOps:
    """The bulk operations the write-behind unit of work needs, on the writer connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def lock_identities(self, keys: Sequence[ScopedKey]) -> None:
        """The write transaction (BEGIN IMMEDIATE) already excludes every other writer."""

    def find_identities(self, keys: Sequence[ScopedKey]) -> dict[ScopedKey, list[int]]:
        found: dict[ScopedKey, list[int]] = {}
        for chunk in _chunks(keys):
            values = ", ".join(["(?, ?, ?)"] * len(chunk))
            params = [part for scope, key in chunk for part in (scope, key.type, key.value)]
            rows = self.conn.execute(
                f"WITH k (scope, id_type, id_value) AS (VALUES {values})"
                " SELECT i.scope, i.id_type, i.id_value, i.mpid FROM k JOIN identities AS i"
                " ON i.scope = k.scope AND i.id_type = k.id_type AND i.id_value = k.id_value",
                params,
            )
            for scope, id_type, id_value, mpid in rows:
                found.setdefault((scope, IdentityKey(id_type, id_value)), []).append(mpid)
        return found

    def load_profiles(self, mpids: Sequence[int]) -> dict[int, Profile]:
        result: dict[int, Profile] = {}
        for chunk in _chunks(mpids):
            marks = ", ".join(["?"] * len(chunk))
            rows = self.conn.execute(f"SELECT doc FROM profiles WHERE mpid IN ({marks})", chunk)
            for (doc,) in rows:
                profile = decode_profile(doc)
                result[profile.mpid] = profile
        return result

    def known_requests(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        known: set[tuple[str, str]] = set()
        for chunk in _chunks(pairs):
            values = ", ".join(["(?, ?)"] * len(chunk))
            rows = self.conn.execute(
                f"WITH k (input, request_id) AS (VALUES {values})"
                " SELECT r.input, r.request_id FROM k JOIN request_ids AS r"
                " ON r.input = k.input AND r.request_id = k.request_id",
                [part for pair in chunk for part in pair],
            )
            known.update((input_name, request_id) for input_name, request_id in rows)
        return known

    def claim_expired(self, scope: str, stored_before_ms: int, limit: int) -> list[Profile]:
        """The write transaction already excludes every other writer."""
        rows = self.conn.execute(
            "SELECT doc FROM profiles WHERE scope = ? AND last_stored_ms < ?"
            " ORDER BY last_stored_ms LIMIT ?",
            (scope, stored_before_ms, limit),
        )
        return [decode_profile(doc) for (doc,) in rows]

    def page_profiles(
        self, scope: str, from_mpid: int, limit: int, needles: Needles | None
    ) -> list[Profile]:
        matching, params = needle_sql(needles) if needles is not None else ("1", [])
        rows = self.conn.execute(
            # `+scope`: walk the primary key in order; the scope index would sort every row.
            "SELECT doc FROM profiles WHERE +scope = ? AND mpid >= ?"
            f" AND ({matching}) ORDER BY mpid LIMIT ?",
            (scope, from_mpid, *params, limit),
        )
        return [decode_profile(doc) for (doc,) in rows]

    def claim_due(self, before_ms: int, limit: int) -> list[Profile]:
        rows = self.conn.execute(
            "SELECT doc FROM profiles WHERE audience_due_ms <= ? ORDER BY audience_due_ms LIMIT ?",
            (before_ms, limit),
        )
        return [decode_profile(doc) for (doc,) in rows]

    def log_ids(self, mpid: int, from_ms: int, to_ms: int) -> list[int]:
        rows = self.conn.execute(
            "SELECT id FROM event_log WHERE mpid = ? AND received_ms BETWEEN ? AND ? ORDER BY id",
            (mpid, from_ms, to_ms),
        )
        return [r[0] for r in rows]

    def flush(self, writes: PendingWrites) -> None:
        conn = self.conn
        if writes.deletes:
            conn.executemany(
                "DELETE FROM identities WHERE mpid = ?", [(m,) for m, _ in writes.deletes]
            )
            deleted = conn.executemany(
                "DELETE FROM profiles WHERE mpid = ? AND version = ?", writes.deletes
            ).rowcount
            if deleted != len(writes.deletes):
                raise ConcurrentUpdate("a profile changed since this transaction read it")
        self._save_profiles(writes)
        for statement, rows in row_writes(writes, "?"):
            conn.executemany(statement, rows)

    def _save_profiles(self, writes: PendingWrites) -> None:
        inserted = self.conn.executemany(
            "INSERT OR IGNORE INTO profiles (mpid, scope, version, created_ms, last_stored_ms,"
            " audience_due_ms, doc) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    p.mpid,
                    p.scope,
                    p.version,
                    p.created_ms,
                    p.last_stored_ms,
                    p.audience_due_ms,
                    _doc(p),
                )
                for p in writes.inserts
            ],
        ).rowcount
        updated = self.conn.executemany(
            "UPDATE profiles SET version = ?, last_stored_ms = ?, audience_due_ms = ?, doc = ?"
            " WHERE mpid = ? AND version = ?",
            [
                (p.version, p.last_stored_ms, p.audience_due_ms, _doc(p), p.mpid, v)
                for p, v in writes.updates
            ],
        ).rowcount
        if inserted != len(writes.inserts) or updated != len(writes.updates):
            raise ConcurrentUpdate("a profile changed since this transaction read it")


def _doc(profile: Profile) -> str:
    return encode_profile(profile).decode()


def needle_sql(needles: Needles) -> tuple[str, list[object]]:
    """The needles as a condition on the stored JSON text."""
    if isinstance(needles, Has):
        text, folded = needles
        return (
            ("instr(lower(doc), ?) > 0", [text.lower()])
            if folded
            else (
                "instr(doc, ?) > 0",
                [text],
            )
        )
    joiner, parts = needles
    rendered = [needle_sql(part) for part in parts]
    sql = f" {joiner.upper()} ".join(f"({part})" for part, _ in rendered)
    return sql, [param for _, params in rendered for param in params]
