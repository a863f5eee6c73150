"""A subject's erasure in the SQL stores (`UnitOfWork` parts' `erase` methods): the
statements both stores run inside the open transaction, in the placeholder style of each,
with the store's own test of a body holding a needle (`contains`). Each statement returns
the rows it deleted, whose digests (`domain.receipts.row_digest`) go into the receipt.

Also what a verification asks (`erasure_residue`): the same tests, counted."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kindred.audiences.definition import ERASED_EXIT
from kindred.domain.identities import IdentityKey
from kindred.domain.receipts import row_digest
from kindred.ports import Removed

__all__ = ["SqlErasure", "residue"]

# (statement, parameters) -> the rows the statement returned
Execute = Callable[[str, Sequence[object]], list[tuple[Any, ...]]]


class SqlErasure:
    def __init__(self, execute: Execute, mark: str, contains: str) -> None:
        """`contains`: an SQL test of `body` holding the parameter `{mark}`, e.g.
        `instr(body, ?) > 0`."""
        self._execute = execute
        self._mark = mark
        self._contains = contains

    def log(self, mpids: Sequence[int], needles: Sequence[bytes]) -> list[Removed]:
        rows = self._by_mpid("DELETE FROM event_log WHERE mpid = {} RETURNING id, body", mpids)
        if needles:
            held = " OR ".join([self._contains] * len(needles))
            rows += self._execute(
                f"DELETE FROM event_log WHERE mpid IS NULL AND ({held}) RETURNING id, body",
                list(needles),
            )
        return _removed("event_log", rows)

    def rejects(self, needles: Sequence[bytes]) -> list[Removed]:
        if not needles:
            return []
        held = " OR ".join([self._contains] * len(needles))
        rows = self._execute(f"DELETE FROM rejects WHERE {held} RETURNING id, body", list(needles))
        return _removed("rejects", rows)

    def membership_log(self, mpids: Sequence[int]) -> list[Removed]:
        rows = self._by_mpid(
            "DELETE FROM membership_log WHERE mpid = {}"
            " RETURNING id, audience_id, mpid, entered, at_ms",
            mpids,
        )
        return [
            Removed(int(r[0]), row_digest("membership_log", r[0], r[1], r[2], bool(r[3]), r[4]))
            for r in sorted(rows)
        ]

    def merges(self, mpids: Sequence[int]) -> list[Removed]:
        rows: list[tuple[Any, ...]] = []
        m = self._mark
        for mpid in mpids:
            rows += self._execute(
                f"DELETE FROM merges WHERE survivor = {m} OR merged = {m}"
                " RETURNING id, survivor, merged, survivor_before, merged_before",
                [mpid, mpid],
            )
        return [
            Removed(int(r[0]), row_digest("merge_ledger", r[0], r[1], r[2], _raw(r[3]), _raw(r[4])))
            for r in sorted(rows, key=lambda r: int(r[0]))
        ]

    def deliveries(self, mpids: Sequence[int]) -> tuple[list[Removed], list[Removed]]:
        found = []
        for table in ("outbox", "dead_letters"):
            rows = self._by_mpid(
                f"DELETE FROM {table} WHERE mpid = {{}} RETURNING id, connection, body", mpids
            )
            found.append(
                [
                    Removed(int(r[0]), row_digest(table, r[0], r[1], _raw(r[2])))
                    for r in sorted(rows, key=lambda r: int(r[0]))
                ]
            )
        return found[0], found[1]

    def _by_mpid(self, statement: str, mpids: Sequence[int]) -> list[tuple[Any, ...]]:
        sql = statement.format(self._mark)
        return [row for mpid in mpids for row in self._execute(sql, [mpid])]


def _raw(value: object) -> bytes:
    if isinstance(value, str):
        return value.encode()
    assert isinstance(value, bytes | bytearray | memoryview)
    return bytes(value)


def _removed(part: str, rows: list[tuple[Any, ...]]) -> list[Removed]:
    return [
        Removed(int(r[0]), row_digest(part, r[0], _raw(r[1])))
        for r in sorted(rows, key=lambda r: int(r[0]))
    ]


def residue(
    execute: Execute,
    mark: str,
    contains: str,
    *,
    scope: str,
    mpids: Sequence[int],
    identities: Sequence[IdentityKey],
    needles: Sequence[bytes],
    before_ms: int,
) -> dict[str, int]:
    """`DsrStore.erasure_residue` in SQL (`execute` runs a read-only statement)."""
    m = mark

    def count(sql: str, params: Sequence[object]) -> int:
        return int(execute(sql, params)[0][0])

    def per_mpid(sql: str, extra: Sequence[object] = ()) -> int:
        return sum(count(sql.format(m=m), [mpid, *extra]) for mpid in mpids)

    held = " OR ".join([contains] * len(needles)) if needles else "1 = 0"
    links = per_mpid("SELECT count(*) FROM identities WHERE mpid = {m}")
    for key in identities:
        links += count(
            f"SELECT count(*) FROM identities i LEFT JOIN profiles p ON p.mpid = i.mpid"
            f" WHERE i.scope = {m} AND i.id_type = {m} AND i.id_value = {m}"
            f" AND (p.mpid IS NULL OR p.created_ms < {m})"
            + "".join(f" AND i.mpid <> {m}" for _ in mpids),
            [scope, key.type, key.value, before_ms, *mpids],
        )
    return {
        "profiles": per_mpid("SELECT count(*) FROM profiles WHERE mpid = {m}"),
        "identity_links": links,
        "event_log": per_mpid("SELECT count(*) FROM event_log WHERE mpid = {m}")
        + count(
            f"SELECT count(*) FROM event_log WHERE mpid IS NULL AND received_ms < {m} AND ({held})",
            [before_ms, *needles],
        ),
        "rejects": count(
            f"SELECT count(*) FROM rejects WHERE received_ms < {m} AND ({held})",
            [before_ms, *needles],
        ),
        "audience_memberships": per_mpid("SELECT count(*) FROM audience_members WHERE mpid = {m}"),
        "membership_log": per_mpid(
            "SELECT count(*) FROM membership_log WHERE mpid = {m} AND reason <> {m}", [ERASED_EXIT]
        ),
        "merge_ledger": sum(
            count(f"SELECT count(*) FROM merges WHERE survivor = {m} OR merged = {m}", [x, x])
            for x in mpids
        ),
        "outbox": per_mpid(
            "SELECT count(*) FROM outbox WHERE mpid = {m} AND created_ms < {m}", [before_ms]
        ),
        "dead_letters": per_mpid(
            "SELECT count(*) FROM dead_letters WHERE mpid = {m} AND created_ms < {m}", [before_ms]
        ),
    }
