"""The write path: a group of commands in one transaction (one commit, one fsync).

`CommandRunner.apply` is what the group-commit writer calls. Each command is run by the
handler its type maps to, inside one unit of work opened through `Transactions` (whose
forwarding step writes the outbox rows before commit). A command's refusal is its answer
alone; a lost race with another process runs the group again; a group that fails for any
other reason is run command by command, so that one bad batch costs only itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from kindred.domain.errors import StoreUnavailable
from kindred.ports import (
    ConcurrentUpdate,
    Metrics,
    UnitOfWork,
)
from kindred.services.forwarding.transactions import Transactions
from kindred.services.writes.commands import (
    Command,
    Handler,
    HandlerTable,
    Prefetch,
)

__all__ = ["CommandRunner"]

log = logging.getLogger("kindred.ingest")

R = TypeVar("R")

_MAX_CONFLICT_RETRIES = 5


class CommandRunner:
    def __init__(
        self,
        handlers: HandlerTable,
        transactions: Transactions,
        metrics: Metrics,
    ) -> None:
        """`handlers`: command type -> its handler."""
        self._handlers = handlers
        self._transactions = transactions
        self._metrics = metrics

    def run(self, command: Command[R]) -> R:
        """One command in a group of its own; raises its refusal, or StoreUnavailable."""
        (result,) = self.run_all([command])
        return result

    def run_all(self, commands: Sequence[Command[R]]) -> list[R]:
        """Commands of one type as one group; raises the first refusal or StoreUnavailable
        (the others are committed all the same)."""
        results: list[Any] = self.apply(commands)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    def apply(self, commands: Sequence[Command[Any]]) -> list[Any]:
        """What the group-commit writer runs: each command's result, or the exception its
        sender gets (its refusal; StoreUnavailable when the store could not take it, and
        then nothing of it is stored)."""
        started = time.perf_counter()
        results: list[Any]
        try:
            results = self._apply_group(commands)
        except StoreUnavailable as exc:
            results = [exc] * len(commands)  # each command would fail alike
        except Exception:
            log.exception("group of %d failed; applying its commands one by one", len(commands))
            results = [self._apply_alone(command) for command in commands]
        self._metrics.group_committed(len(commands), time.perf_counter() - started)
        for command, result in zip(commands, results, strict=True):
            if not isinstance(result, BaseException):
                self._handler(command).committed(command, result)
        return results

    def _apply_group(self, commands: Sequence[Command[Any]]) -> list[Any]:
        """Another process (or a colliding new MPID) won a race: run the group again, a
        bounded number of times; the last attempt's ConcurrentUpdate propagates."""
        for _ in range(_MAX_CONFLICT_RETRIES - 1):
            try:
                return self._try_group(commands)
            except ConcurrentUpdate:
                continue
        return self._try_group(commands)

    def _try_group(self, commands: Sequence[Command[Any]]) -> list[Any]:
        with self._transactions.begin() as uow:
            # The group's definitions: read first, so that on a store where several
            # processes write, a definition's change waits for the group (or the group
            # for it) rather than landing in its middle.
            uow.definitions_version()
            self._prefetch(uow, commands)
            return [self._run_one(uow, command) for command in commands]

    def _prefetch(self, uow: UnitOfWork, commands: Sequence[Command[Any]]) -> None:
        """Tell the store everything this group will ask about, so it can read it in bulk."""
        wanted = Prefetch()
        for command in commands:
            self._handler(command).announce(command, wanted)
        uow.prefetch(wanted.identities, wanted.mpids, wanted.requests)

    def _run_one(self, uow: UnitOfWork, command: Command[Any]) -> Any:
        handler = self._handler(command)
        try:
            return handler.run(uow, command)
        except handler.refusals as refusal:
            return refusal

    def _apply_alone(self, command: Command[Any]) -> Any:
        try:
            return self._apply_group([command])[0]
        except StoreUnavailable as exc:
            return exc  # nothing of it stored: its sender is told to come back
        except Exception as exc:
            try:
                answer = self._handler(command).failed(command, exc)
            except StoreUnavailable as full:
                return full  # not even the failure could be kept
            return exc if answer is None else answer

    def _handler(self, command: Command[Any]) -> Handler[Any, Any]:
        return self._handlers[type(command)]
