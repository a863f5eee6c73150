"""Definitions every process uses alike: audiences, calculated attributes, credentials,
outputs and connections.

Each process keeps them in memory, built once (parsed, compiled), and rebuilds them when
the store's definitions version moves: every save of a definition raises it, in any
process. A transaction reads the version inside itself (`UnitOfWork.definitions_version`)
and uses the definitions of exactly that version, so a change committed by any process is
used by every process from its next transaction on, and on stores where several processes
write a change waits for the transactions that use the older definitions. A read outside
any transaction (the Profile API, the admin API) uses the version as last committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from kindred.ports import DefinitionsVersion

__all__ = ["Versioned"]

T = TypeVar("T")


class Versioned(Generic[T]):
    """A value built from the store's definitions, rebuilt when their version moves."""

    def __init__(self, versions: DefinitionsVersion, build: Callable[[], T]) -> None:
        """`build` reads the definitions as last committed."""
        self._versions = versions
        self._build = build
        self._built: tuple[int, T] | None = None
        self._lock = threading.Lock()

    def at(self, version: int) -> T:
        """The value for the definitions at `version` (read inside the caller's
        transaction: no definition changes until it ends)."""
        built = self._built
        if built is None or built[0] != version:
            with self._lock:
                built = self._built
                if built is None or built[0] != version:
                    # Read after the version: what it builds is at least that new.
                    built = self._built = (version, self._build())
        return built[1]

    def current(self) -> T:
        """The value for the definitions as last committed (outside any transaction)."""
        return self.at(self._versions.definitions_version())
