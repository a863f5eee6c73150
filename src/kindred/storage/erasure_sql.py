"""A subject's erasure in the SQL stores (`UnitOfWork` parts' `erase` methods): the
statements both stores run inside the open transaction, in the placeholder style of each,
with the store's own test of a body holding a needle (`contains`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["SqlErasure"]

# (statement, parameters) -> rows the statement changed
Execute = Callable[[str, Sequence[object]], int]


class SqlErasure:
    def __init__(self, execute: Execute, mark: str, contains: str) -> None:
        """`contains`: an SQL test of `body` holding the parameter `{mark}`, e.g.
        `instr(body, ?) > 0`."""
        self._execute = execute
        self._mark = mark
        self._contains = contains

    def log(self, mpids: Sequence[int], needles: Sequence[bytes]) -> int:
        done = self._by_mpid("DELETE FROM event_log WHERE mpid = {}", mpids)
        if needles:
            held = " OR ".join([self._contains] * len(needles))
            done += self._execute(
                f"DELETE FROM event_log WHERE mpid IS NULL AND ({held})", list(needles)
            )
        return done

    def rejects(self, needles: Sequence[bytes]) -> int:
        if not needles:
            return 0
        held = " OR ".join([self._contains] * len(needles))
        return self._execute(f"DELETE FROM rejects WHERE {held}", list(needles))

    def membership_log(self, mpids: Sequence[int]) -> int:
        return self._by_mpid("DELETE FROM membership_log WHERE mpid = {}", mpids)

    def merges(self, mpids: Sequence[int]) -> int:
        done = 0
        for mpid in mpids:
            m = self._mark
            done += self._execute(
                f"DELETE FROM merges WHERE survivor = {m} OR merged = {m}", [mpid, mpid]
            )
        return done

    def deliveries(self, mpids: Sequence[int]) -> tuple[int, int]:
        outbox = self._by_mpid("DELETE FROM outbox WHERE mpid = {}", mpids)
        dead = self._by_mpid("DELETE FROM dead_letters WHERE mpid = {}", mpids)
        return outbox, dead

    def _by_mpid(self, statement: str, mpids: Sequence[int]) -> int:
        sql = statement.format(self._mark)
        return sum(self._execute(sql, [mpid]) for mpid in mpids)
