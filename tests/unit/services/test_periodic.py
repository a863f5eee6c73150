"""Background work on a timer (services.background.Periodic): a run that did work is
followed by the next at once when asked, else the interval is waited."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kindred.services.background import Periodic


def _runs_within(again_if: Callable[[object], bool] | None, seconds: float) -> list[float]:
    """The instants of the runs of a task that reports work for its first three runs, on a
    one-minute timer, watched for `seconds`."""
    runs: list[float] = []
    third = threading.Event()

    def task() -> int:
        runs.append(time.monotonic())
        if len(runs) >= 3:
            third.set()
        return 500 if len(runs) <= 3 else 0

    periodic = Periodic("test-task", 60.0, task, first_after_s=0, again_if=again_if)
    periodic.start()
    third.wait(seconds)
    time.sleep(0.05)  # a fourth run would come now, were it not for the interval
    periodic.stop()
    return runs


def test_a_run_that_did_work_is_followed_by_the_next_at_once() -> None:
    runs = _runs_within(lambda evaluated: evaluated != 0, seconds=5)
    # Three runs with work back to back, then the fourth (no work) and the minute's wait.
    assert len(runs) == 4
    assert runs[-1] - runs[0] < 5


def test_without_it_every_run_waits_the_interval() -> None:
    assert len(_runs_within(None, seconds=0.2)) == 1
