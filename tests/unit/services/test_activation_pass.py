"""The activation's pass (services.audiences.activation) while the world goes on: a profile
the pass has been through is evaluated by the batches that reach it (its histories are
complete), one it has not reached yet waits for the pass, and merges during the pass
neither lose nor double any stored event."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec

from kindred.audiences.definition import AudienceDef
from kindred.domain.merge import merge_profiles, merged_stub
from kindred.services.audiences.activation import ActivationPass, Span
from kindred.services.audiences.jobs import AudienceBackfill
from kindred.services.forwarding.transactions import Transactions
from tests.unit.services.test_audience_history import DAY, PLAYED, World

AT_LEAST_3 = {**PLAYED, "within_days": 30, "at_least": 3}


def _stepping(world: World) -> World:
    """The world's backfill one profile a page, one page a run."""
    world.backfill = AudienceBackfill(
        world.store, Transactions(world.store), world.registry, world.clock,
        chunks_per_run=1, chunk=1,
    )  # fmt: skip
    return world


def _history_lengths(world: World, mpid: int) -> list[int]:
    profile = world.store.get_profile(mpid)
    assert profile is not None
    return sorted(len(times) for times in profile.event_times.values())


def test_a_profile_the_pass_went_through_is_evaluated_live_and_one_ahead_of_it_waits() -> None:
    world = _stepping(World())
    for customer in ("u1", "u2", "u3"):  # MPIDs 1, 2, 3: two stored plays each
        world.plays(customer, [DAY, 2 * DAY])
    audience = world.audience(AT_LEAST_3)
    world.backfill.run()  # the pass has been through MPID 1 only
    assert world.store.list_audiences()[0].history_from is not None  # still warming
    world.plays("u1", [0])  # its third play: it enters at once
    world.plays("u3", [0])  # also its third, but the pass has not reached it
    assert world.members(audience) == [1]
    world.settle()
    assert world.members(audience) == [1, 3]
    log = world.store.membership_log(audience_id=audience, mpid=None, until_ms=2**62, limit=10)
    assert sorted((c.mpid, c.entered) for c in log) == [(1, True), (3, True)]
    assert _history_lengths(world, 1) == [3]  # the live play counted once


def _event_times(world: World, mpid: int) -> list[list[int]]:
    profile = world.store.get_profile(mpid)
    assert profile is not None
    return sorted(list(times) for times in profile.event_times.values())


def _merge(world: World, survivor_mpid: int, merged_mpid: int) -> None:
    """What IDSync writes when it merges two profiles (the ledger aside)."""
    with world.store.unit_of_work() as uow:
        loaded = uow.profiles.load([survivor_mpid, merged_mpid])
        survivor, merged = loaded[survivor_mpid], loaded[merged_mpid]
        result, _ = merge_profiles(survivor, merged)
        uow.profiles.save(msgspec.structs.replace(result, version=survivor.version + 1))
        uow.profiles.save(merged_stub(merged, survivor_mpid, world.clock.now_ms()))


def test_a_merge_into_a_profile_the_pass_went_through_brings_the_other_s_events_once() -> None:
    world = _stepping(World())
    world.plays("u1", [DAY, 2 * DAY])
    world.plays("u2", [DAY, 2 * DAY])
    audience = world.audience({**PLAYED, "within_days": 30, "at_least": 4})
    world.backfill.run()  # through MPID 1
    _merge(world, survivor_mpid=1, merged_mpid=2)  # MPID 2 not folded yet
    world.settle()
    assert world.members(audience) == [1]
    assert _history_lengths(world, 1) == [4]


def test_a_merge_into_a_profile_ahead_of_the_pass_keeps_the_folded_one_s_events_once() -> None:
    world = _stepping(World())
    world.plays("u1", [DAY, 2 * DAY])
    world.plays("u2", [DAY, 2 * DAY])
    audience = world.audience({**PLAYED, "within_days": 30, "at_least": 4})
    world.backfill.run()  # through MPID 1: its two plays folded into its own histories
    _merge(world, survivor_mpid=2, merged_mpid=1)  # they move to MPID 2, not folded yet
    world.settle()
    assert world.members(audience) == [2]
    assert _history_lengths(world, 2) == [4]  # not 6: MPID 1's batches are not folded again


def test_a_profile_created_during_the_pass_is_evaluated_by_each_of_its_batches() -> None:
    world = _stepping(World())
    for customer in ("u1", "u2"):
        world.plays(customer, [DAY])
    audience = world.audience({**PLAYED, "within_days": 30, "at_least": 2})
    world.backfill.run()
    world.plays("u9", [DAY])  # a new profile (MPID 3): nothing stored to fold
    world.plays("u9", [0])  # its second batch, the pass still going
    assert world.members(audience) == [3]


def test_the_marks_of_a_finished_activation_go_with_the_profile_s_next_batch() -> None:
    world = _stepping(World())
    world.plays("u1", [DAY, 2 * DAY])
    world.plays("u2", [DAY])
    audience = world.audience(AT_LEAST_3)
    world.backfill.run()  # MPID 1 marked; the pass not through yet
    world.plays("u1", [0])
    marked = world.store.get_profile(1)
    assert marked is not None
    assert marked.event_folded  # still read while it is warming
    world.settle()
    world.plays("u1", [0])
    after = world.store.get_profile(1)
    assert after is not None
    assert after.event_folded == {}  # nothing reads them any more
    assert _history_lengths(world, 1) == [4]  # the histories stay
    assert world.members(audience) == [1]


class _RecordedDisk:
    """A store's durability as the pass uses it, recording each step in order: a page's
    commit (and whether its sync was deferred), a sync, a save of the audience's cursor."""

    def __init__(self, world: World) -> None:
        self.steps: list[str] = []
        self._deferring = False
        store = world.store
        unit_of_work, save_audience = store.unit_of_work, store.save_audience

        @contextmanager
        def recorded_unit_of_work() -> Iterator[Any]:
            with unit_of_work() as uow:
                yield uow
            self.steps.append("page, deferred" if self._deferring else "page, synced")

        def recorded_save(audience: Any, **kwargs: Any) -> Any:
            self.steps.append("cursor")
            return save_audience(audience, **kwargs)

        store.unit_of_work = recorded_unit_of_work  # type: ignore[method-assign]
        store.save_audience = recorded_save  # type: ignore[method-assign]

    @contextmanager
    def deferred_sync(self, *, copy_meanwhile: bool = False) -> Iterator[None]:
        self._deferring = True
        self.copied_meanwhile = copy_meanwhile
        try:
            yield
        finally:
            self._deferring = False

    def sync(self) -> None:
        self.steps.append("sync")


def test_the_pass_syncs_its_pages_once_before_its_cursor_moves_past_them() -> None:
    world = World()
    for customer in ("u1", "u2", "u3"):
        world.plays(customer, [DAY])
    world.audience(AT_LEAST_3)
    disk = _RecordedDisk(world)
    world.backfill = AudienceBackfill(
        world.store, Transactions(world.store), world.registry, world.clock,
        chunks_per_run=2, chunk=1, durability=disk,
    )  # fmt: skip
    world.backfill.run()
    assert disk.steps == ["page, deferred", "page, deferred", "sync", "cursor"]
    assert disk.copied_meanwhile  # its WAL copied in the background meanwhile


class _Meanwhile:
    """The world's store, running `step(n)` right after its n-th page read (before the page
    is saved)."""

    def __init__(self, world: World, step: Callable[[int], object]) -> None:
        self._world = world
        self._step = step
        self.reads = 0

    def profiles_between(self, *args: Any) -> Any:
        read = self._world.store.profiles_between(*args)
        self.reads += 1
        self._step(self.reads)
        return read

    def __getattr__(self, name: str) -> Any:
        return getattr(self._world.store, name)


def _at(read: int, step: Callable[[], object]) -> Callable[[int], None]:
    """`step` right after the `read`-th read alone."""

    def run(n: int) -> None:
        if n == read:
            step()

    return run


def _pass_over(world: World, store: Any, **more: Any) -> None:
    world.backfill = AudienceBackfill(
        store, Transactions(world.store), world.registry, world.clock, **more
    )


def test_a_batch_between_a_page_s_read_and_its_save_has_the_page_computed_again() -> None:
    world = World()
    for customer in ("u1", "u2", "u3"):  # MPIDs 1, 2, 3: two stored plays each
        world.plays(customer, [DAY, 2 * DAY])
    audience = world.audience(AT_LEAST_3)
    meanwhile = _Meanwhile(world, _at(1, lambda: world.plays("u2", [0])))  # its third
    _pass_over(world, meanwhile)
    world.backfill.run()
    assert meanwhile.reads == 2  # the page's save found MPID 2 changed: read again
    assert world.store.list_audiences()[0].history_from is None  # the pass is through
    world.settle()
    assert world.members(audience) == [2]
    assert _history_lengths(world, 2) == [3]  # the live play counted once
    assert _history_lengths(world, 1) == [2]


def test_a_page_that_keeps_colliding_is_done_in_one_transaction_at_its_last_try() -> None:
    world = World()
    world.plays("u1", [DAY, 2 * DAY])
    audience = world.audience(AT_LEAST_3)
    meanwhile = _Meanwhile(world, lambda _: world.plays("u1", [0]))  # after every read
    _pass_over(world, meanwhile)
    world.backfill.run()
    assert meanwhile.reads == 4  # four tries computed outside; the fifth held the writer
    assert world.store.list_audiences()[0].history_from is None
    world.settle()
    assert world.members(audience) == [1]
    # The histories are those of the audience active from the start: each play once.
    active_before = World()
    active_before.audience(AT_LEAST_3)
    active_before.plays("u1", [DAY, 2 * DAY])
    for _ in range(4):
        active_before.plays("u1", [0])
    assert _event_times(world, 1) == _event_times(active_before, 1)


class _OtherProcess:
    """A SpanRunner standing in for the activation's processes: a second pass over the same
    store runs the spans (`lost`: the indexes of spans reported not done, once)."""

    def __init__(self, world: World, lost: set[int]) -> None:
        self._pass = ActivationPass(
            world.store, Transactions(world.store), world.registry, world.clock, page=1
        )
        self._lost = lost
        self.given: list[list[Span]] = []

    def run_spans(
        self, audience: AudienceDef, now_ms: int, scope: str, spans: Sequence[Span]
    ) -> list[int | None]:
        self.given.append(list(spans))
        done = self._pass.run_spans(audience.id, audience.updated_ms, now_ms, scope, spans)
        lost, self._lost = self._lost, set()
        return [None if i in lost else count for i, count in enumerate(done)]


def test_a_run_s_spans_computed_elsewhere_move_the_cursor_up_to_the_first_not_done() -> None:
    world = World()
    customers = [f"u{n}" for n in range(1, 11)]  # MPIDs 1 to 10
    for n, customer in enumerate(customers):
        world.plays(customer, [DAY] * (1 + n % 4))  # 3 or more plays: MPIDs 3, 4, 7, 8
    audience = world.audience(AT_LEAST_3)
    elsewhere = _OtherProcess(world, lost={2})  # the third span not done, the first time
    _pass_over(world, world.store, chunk=1, chunks_per_run=9, elsewhere=elsewhere)
    world.backfill.run()
    assert elsewhere.given == [[(m, m + 1) for m in range(1, 10)]]  # a page a span
    cursor = world.store.list_audiences()[0]
    assert (cursor.backfill_from, cursor.backfill_done) == (3, 2)  # from the span not done
    world.backfill.run()  # MPIDs 3 to 10: 8 spans, elsewhere too
    assert elsewhere.given[1] == [(m, m + 1) for m in range(3, 10)] + [(10, None)]
    world.settle()
    assert world.members(audience) == [3, 4, 7, 8]
    assert all(_history_lengths(world, m) == [1 + (m - 1) % 4] for m in range(1, 11))


def _spans_elsewhere(world: World, store: Any) -> list[int | None]:
    """What another process reports for three spans of one profile each (MPIDs 1, 2, 3)."""
    other = ActivationPass(store, Transactions(world.store), world.registry, world.clock, page=1)
    audience = world.store.list_audiences()[0]
    first = world.store.get_profile(1)
    assert first is not None
    spans: list[Span] = [(1, 2), (2, 3), (3, None)]
    now = world.clock.now_ms()
    return other.run_spans(audience.id, audience.updated_ms, now, first.scope, spans)


def test_a_span_s_page_that_collided_is_done_again_before_the_span_is_reported() -> None:
    world = World()
    for customer in ("u1", "u2", "u3"):
        world.plays(customer, [DAY, 2 * DAY])
    audience = world.audience(AT_LEAST_3)
    # Each span of one profile takes two reads: the third is MPID 2's page.
    meanwhile = _Meanwhile(world, _at(3, lambda: world.plays("u2", [0])))
    assert _spans_elsewhere(world, meanwhile) == [1, 1, 1]
    assert meanwhile.reads > 6  # MPID 2's page was read again
    done = world.store.get_profile(2)
    assert done is not None
    assert done.event_folded  # folded and saved before the spans were reported
    assert _history_lengths(world, 2) == [3]  # the live play once
    world.settle()
    assert world.members(audience) == [2]


def test_spans_after_one_whose_audience_changed_are_reported_not_done() -> None:
    world = World()
    for customer in ("u1", "u2", "u3"):
        world.plays(customer, [DAY, 2 * DAY, 3 * DAY])
    audience = world.audience(AT_LEAST_3)

    def deactivated_once_mpid_1_is_saved() -> None:
        deadline = time.monotonic() + 10
        while not _saved_by_the_pass(world, 1):  # saved before this read (a saver would lag)
            assert time.monotonic() < deadline
            time.sleep(0.001)
        world.service.set_status(audience, "inactive")

    meanwhile = _Meanwhile(world, _at(3, deactivated_once_mpid_1_is_saved))
    assert _spans_elsewhere(world, meanwhile) == [1, None, None]
    assert not _saved_by_the_pass(world, 2)
    assert not _saved_by_the_pass(world, 3)


def _saved_by_the_pass(world: World, mpid: int) -> bool:
    profile = world.store.get_profile(mpid)
    return profile is not None and bool(profile.event_folded)
