"""Forwarding's threads: one per enabled connection, each stepping its lane
(services.forwarding.delivery), following the catalog as connections come and go; or every
lane stepped in the caller's thread until nothing is left to send (`kindred deliver`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kindred.domain.forwarding import AudienceConnection, EventConnection, OutputDef
from kindred.services.forwarding.catalog import OutputCatalog
from kindred.services.forwarding.delivery import Lane

__all__ = ["DeliveryRunner"]


log = logging.getLogger("kindred.delivery")


@dataclass
class _Running:
    lane: Lane
    thread: threading.Thread
    stop: threading.Event


class DeliveryRunner:
    """A thread per enabled connection, each stepping its lane; the set of lanes follows
    the catalog (connections added or removed at run time)."""

    def __init__(
        self,
        catalog: OutputCatalog,
        make_lane: Callable[[EventConnection | AudienceConnection, OutputDef], Lane],
        *,
        idle_s: float = 0.2,
        fixed: Sequence[tuple[EventConnection, OutputDef]] = (),
    ) -> None:
        """`fixed`: connections sent over whatever the catalog holds (the status callbacks
        of data subject requests)."""
        self._catalog = catalog
        self._make_lane = make_lane
        self._fixed = list(fixed)
        self._idle_s = idle_s
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()

    def reconcile(self) -> None:
        """Start lanes for new connections, stop those of removed or changed ones."""
        defs = self._catalog.current()
        wanted: dict[str, tuple[EventConnection | AudienceConnection, OutputDef]] = {
            c.name: (c, output) for c, output in self._fixed
        }
        for c in defs.connections():
            output = defs.output(c.output)
            if c.enabled and output is not None:
                wanted[c.name] = (c, output)
        with self._lock:
            for name, running in list(self._running.items()):
                lane = running.lane
                if wanted.get(name) != (lane.connection, lane.output):
                    self._stop_one(name)
            for name, (c, output) in wanted.items():
                if name not in self._running:
                    self._start_one(self._make_lane(c, output))

    def lanes(self) -> list[Lane]:
        """A new lane for every enabled connection (the caller steps and releases them)."""
        defs = self._catalog.current()
        return [self._make_lane(c, o) for c, o in self._fixed] + [
            self._make_lane(c, o)
            for c in defs.connections()
            if c.enabled and (o := defs.output(c.output)) is not None
        ]

    def drain(self) -> int:
        """Step every lane in this thread until none has anything to send now; for
        `kindred deliver`. Returns the rows finished."""
        lanes = self.lanes()
        total = 0
        try:
            while True:
                done = sum(lane.step() for lane in lanes)
                total += done
                if not done:
                    return total
        finally:
            for lane in lanes:
                lane.release()

    def stop(self) -> None:
        with self._lock:
            for name in list(self._running):
                self._stop_one(name)

    def _start_one(self, lane: Lane) -> None:
        stop = threading.Event()
        thread = threading.Thread(
            target=self._loop, args=(lane, stop), name=f"deliver-{lane.name}", daemon=True
        )
        self._running[lane.name] = _Running(lane, thread, stop)
        thread.start()

    def _stop_one(self, name: str) -> None:
        running = self._running.pop(name)
        running.stop.set()
        running.thread.join(timeout=running.lane.output.timeout_s + 5)

    def _loop(self, lane: Lane, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    done = lane.step()
                except Exception:
                    log.exception("%s: delivery step failed", lane.name)
                    done = 0
                if not done:
                    stop.wait(self._idle_s)
        finally:
            try:
                lane.release()
            except Exception:
                log.exception("%s: release failed", lane.name)
