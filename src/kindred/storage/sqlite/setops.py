"""The SQLite side of the write-behind unit of work: bulk reads and the flush, on the
writer connection inside its open transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from kindred.audiences.definition import Selection
from kindred.audiences.prefilter import Has, Held, needles
from kindred.audiences.sql import to_sql
from kindred.domain.dsr import DsrRequest
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Membership, Profile
from kindred.ports import ConcurrentUpdate, Needles
from kindred.storage.codec import ProfileRead, stored_document, stored_profile
from kindred.storage.dsr_sql import DsrStatements, update_params
from kindred.storage.erasure_sql import SqlErasure
from kindred.storage.membership_log import LogRuns
from kindred.storage.pending_writes import PendingWrites, ScopedKey, row_writes
from kindred.storage.selection_sql import SelectionDialect, selection_sql

__all__ = ["NOT_MERGED", "PROFILE_COLUMNS", "SqliteSetOps", "needle_sql", "sqlite_document"]


# A profile row as read: its document and its memberships (see codec.stored_profile).
PROFILE_COLUMNS = (
    "doc, (SELECT json_group_object(am.audience_id, json_object('audience_id', am.audience_id,"
    " 'name', am.name, 'since_ms', am.since_ms, 'expires_ms', am.expires_ms))"
    " FROM audience_members AS am WHERE am.mpid = profiles.mpid)"
)
# Not a merged profile's stub; tested after the criteria, which have most often parsed the
# document already (SQLite keeps the parse of a document for the rest of the statement).
NOT_MERGED = "doc ->> '$.merged_into' IS NULL"
# `+scope`: walk the primary key in order; CROSS JOIN: members first, as written.
_DIALECT = SelectionDialect(
    named=lambda name: f":{name}", scope="+profiles.scope = :scope", join="CROSS JOIN"
)
# A run of membership log rows in one statement, its MPIDs as a JSON array.
_LOG_RUNS = LogRuns(
    statement="INSERT INTO membership_log (audience_id, mpid, entered, at_ms, reason)"
    " SELECT ?, value, ?, ?, ? FROM json_each(?) ORDER BY key",
    mpids=lambda mpids: msgspec.json.encode(mpids).decode(),
)
_UPDATE_DSR = DsrStatements.of("?").update
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

    def read_profiles(self, mpids: Sequence[int]) -> dict[int, ProfileRead]:
        result: dict[int, ProfileRead] = {}
        for chunk in _chunks(mpids):
            marks = ", ".join(["?"] * len(chunk))
            rows = self.conn.execute(
                f"SELECT mpid, version, {PROFILE_COLUMNS} FROM profiles WHERE mpid IN ({marks})",
                chunk,
            )
            for mpid, version, doc, held in rows:
                result[mpid] = ProfileRead(version, doc, held)
        return result

    def document(self, profile: Profile) -> str:
        return sqlite_document(profile)

    def log_position(self, partition: int) -> int:
        row = self.conn.execute(
            "SELECT seq FROM log_positions WHERE partition_no = ?", (partition,)
        ).fetchone()
        return int(row[0]) if row else 0

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
            f"SELECT {PROFILE_COLUMNS} FROM profiles WHERE scope = ? AND last_stored_ms < ?"
            " ORDER BY last_stored_ms LIMIT ?",
            (scope, stored_before_ms, limit),
        )
        return [stored_profile(doc, held) for doc, held in rows]

    def aged_log(
        self, workspace_ids: Sequence[int], received_before_ms: int, limit: int
    ) -> list[tuple[int, int | None]]:
        """The write transaction already excludes every other writer."""
        marks = ", ".join("?" * len(workspace_ids))
        rows = self.conn.execute(
            f"SELECT id, mpid FROM event_log WHERE received_ms < ? AND workspace_id IN ({marks})"
            " ORDER BY received_ms, id LIMIT ?",
            (received_before_ms, *workspace_ids, limit),
        )
        return [(i, m) for i, m in rows]

    def delete_log(self, entry_ids: Sequence[int]) -> int:
        done = 0
        for start in range(0, len(entry_ids), 500):
            part = entry_ids[start : start + 500]
            marks = ", ".join("?" * len(part))
            done += self.conn.execute(
                f"DELETE FROM event_log WHERE id IN ({marks})", tuple(part)
            ).rowcount
        return done

    def page_profiles(
        self, scope: str, from_mpid: int, limit: int, needles: Needles | None
    ) -> list[Profile]:
        matching, params = needle_sql(needles) if needles is not None else ("1", [])
        rows = self.conn.execute(
            # `+scope`: walk the primary key in order; the scope index would sort every row.
            f"SELECT {PROFILE_COLUMNS} FROM profiles WHERE +scope = ? AND mpid >= ?"
            f" AND ({matching}) ORDER BY mpid LIMIT ?",
            (scope, from_mpid, *params, limit),
        )
        return [stored_profile(doc, held) for doc, held in rows]

    def claim_due(self, before_ms: int, limit: int) -> list[Profile]:
        rows = self.conn.execute(
            f"SELECT {PROFILE_COLUMNS} FROM profiles WHERE audience_due_ms <= ?"
            " ORDER BY audience_due_ms LIMIT ?",
            (before_ms, limit),
        )
        return [stored_profile(doc, held) for doc, held in rows]

    def log_ids(self, mpid: int, from_ms: int, to_ms: int) -> list[int]:
        rows = self.conn.execute(
            "SELECT id FROM event_log WHERE mpid = ? AND received_ms BETWEEN ? AND ? ORDER BY id",
            (mpid, from_ms, to_ms),
        )
        return [r[0] for r in rows]

    def apply_selection(
        self, selection: Selection, held: Membership, from_mpid: int, limit: int
    ) -> tuple[int, int | None, list[int], list[int]] | None:
        """Two statements over the page: members the criteria no longer admit leave, then
        profiles they admit that are not members enter. The writer transaction excludes
        every other writer, so neither a profile nor the audience changes meanwhile."""
        if not self.audience_active(held.audience_id):
            return None
        scope = selection.scope
        read, last = self.conn.execute(
            "SELECT count(*), max(mpid) FROM (SELECT mpid FROM profiles INDEXED BY"
            " profiles_by_scope_mpid WHERE scope = ? AND mpid >= ? ORDER BY mpid LIMIT ?)",
            (scope, from_mpid, limit),
        ).fetchone()
        if not read:
            return 0, None, [], []
        criteria = to_sql(
            selection.criteria, "sqlite", sorted(selection.workspace_ids), selection.now_ms
        )
        prefilter, prefilter_params = _named(needles(selection.criteria))
        params = {
            **criteria.params,
            **prefilter_params,
            "scope": scope,
            "from": from_mpid,
            "last": last,
            "audience": held.audience_id,
            "name": held.name,
            "since": held.since_ms,
        }
        leave, enter = selection_sql(_DIALECT, f"({criteria.text}) AND {NOT_MERGED}", prefilter)
        left = self.conn.execute(leave, params).fetchall()
        entered = self.conn.execute(enter, params).fetchall()
        return read, last, sorted(m for (m,) in entered), sorted(m for (m,) in left)

    def audience_active(self, audience_id: int) -> bool:
        """The writer transaction excludes every other writer: the status stays."""
        row = self.conn.execute("SELECT status FROM audiences WHERE id = ?", (audience_id,))
        found = row.fetchone()
        return found is not None and found[0] == "active"

    def definitions_version(self) -> int:
        """The writer transaction excludes every other writer: the version stays."""
        row = self.conn.execute("SELECT version FROM definitions_version WHERE id = 1")
        return int(row.fetchone()[0])

    def erasure(self) -> SqlErasure:
        return SqlErasure(
            lambda sql, params: self.conn.execute(sql, params).fetchall(), "?", "instr(body, ?) > 0"
        )

    def update_dsr(self, request: DsrRequest) -> bool:
        """The writer transaction excludes every other writer: the version checked stays."""
        return self.conn.execute(_UPDATE_DSR, update_params(request)).rowcount == 1

    def remove_members(self, audience_id: int) -> list[int]:
        rows = self.conn.execute(
            "DELETE FROM audience_members WHERE audience_id = ? RETURNING mpid", (audience_id,)
        )
        return sorted(m for (m,) in rows)

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
        for statement, rows in row_writes(writes, "?", _LOG_RUNS):
            conn.executemany(statement, rows)

    def _save_profiles(self, writes: PendingWrites) -> None:
        inserted = self.conn.executemany(
            "INSERT OR IGNORE INTO profiles (mpid, scope, version, created_ms, last_stored_ms,"
            " audience_due_ms, doc) VALUES (?, ?, ?, ?, ?, ?, ?)",
            writes.profile_inserts(),
        ).rowcount
        updated = 0
        for columns, rows in writes.updates_by_changed_columns().items():
            sets = "".join(f"{column} = ?, " for column in columns)
            updated += self.conn.executemany(
                f"UPDATE profiles SET version = ?, {sets}doc = ? WHERE mpid = ? AND version = ?",
                rows,
            ).rowcount
        if inserted != len(writes.inserts) or updated != len(writes.updates):
            raise ConcurrentUpdate("a profile changed since this transaction read it")


def sqlite_document(profile: Profile) -> str:
    """The profile's document as the profiles table keeps it."""
    return stored_document(profile).decode()


def _named(found: Needles | None) -> tuple[str, dict[str, object]]:
    """needle_sql with named placeholders (`:n0` ...), to sit beside other named ones."""
    if found is None:
        return "1", {}
    sql, values = needle_sql(found)
    parts = sql.split("?")
    names = {f"n{i}": value for i, value in enumerate(values)}
    return "".join(p + (f":n{i}" if i < len(values) else "") for i, p in enumerate(parts)), names


def needle_sql(needles: Needles) -> tuple[str, list[object]]:
    """The needles as a condition on the stored JSON text (and memberships)."""
    if isinstance(needles, Held):
        return (
            "EXISTS (SELECT 1 FROM audience_members AS held"
            " WHERE held.audience_id = ? AND held.mpid = profiles.mpid)",
            [int(needles)],
        )
    if isinstance(needles, Has):
        text, folded = needles
        if not folded:
            # GLOB and LIKE find their first letter with strcspn(); instr() compares at
            # every byte, which took twice as long on whole documents.
            return "doc GLOB ?", [f"*{_glob_literal(text)}*"]
        # LIKE folds ASCII letters only. Python's lower() makes ASCII of one other letter,
        # the Kelvin sign (K -> k), so a text with a k also lets that through.
        kelvin = " OR instr(doc, '\u212a') > 0" if "k" in text.lower() else ""
        return f"(doc LIKE ?{kelvin})", [f"%{text}%"]
    joiner, parts = needles
    rendered = [needle_sql(part) for part in parts]
    sql = f" {joiner.upper()} ".join(f"({part})" for part, _ in rendered)
    return sql, [param for _, params in rendered for param in params]


def _glob_literal(text: str) -> str:
    """The text as a GLOB pattern that matches it alone (`*`, `?` and `[` in brackets)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)
