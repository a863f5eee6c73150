"""The composition root: Settings -> store, services, writer. The only place naming adapters.

`container` builds a process's services; `write_side`, `security`, `forwarding` and
`stores` build their parts."""

from __future__ import annotations

from kindred.bootstrap.container import Container, build
from kindred.bootstrap.stores import make_store, missing_store

__all__ = ["Container", "build", "make_store", "missing_store"]
