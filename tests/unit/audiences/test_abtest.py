"""A/B test assignment (AUD-8): a pure function of (audience, salt, MPID), so stable when
the test's other settings change and across processes; splits a large random population
within one percentage point of the percentages; and the variations' checks."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.audiences.abtest import (
    CONTROL,
    AbTest,
    Variation,
    assign_point,
    checked_variations,
    sends_member,
)
from kindred.domain.errors import InvalidBatch

__all__: list[str] = []

# The tolerance the split is held to: each variation's share of 100k random MPIDs within one
# percentage point of its percentage (the standard error at 50% is 0.16 points).
POPULATION = 100_000
TOLERANCE_POINTS = 1.0

mpids = st.integers(min_value=-(2**63), max_value=2**63 - 1)
salts = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
audience_ids = st.integers(min_value=1, max_value=2**31)


@st.composite
def percentages(draw: st.DrawFn) -> list[int]:
    """1..5 variations' percentages, together at most 100."""
    count = draw(st.integers(min_value=1, max_value=5))
    shares: list[int] = []
    left = 100
    for _ in range(count):
        if left < 1:
            break
        share = draw(st.integers(min_value=1, max_value=left))
        shares.append(share)
        left -= share
    return shares


def a_test(audience_id: int, salt: str, shares: list[int], names: str = "V") -> AbTest:
    return AbTest(
        audience_id=audience_id,
        salt=salt,
        variations=[Variation(name=f"{names}{i}", percentage=p) for i, p in enumerate(shares)],
        created_ms=1,
        updated_ms=1,
    )


@settings(max_examples=200)
@given(audience_ids, salts, percentages(), st.lists(mpids, min_size=1, max_size=50))
def test_a_member_keeps_its_variation_when_the_test_is_saved_again(
    audience_id: int, salt: str, shares: list[int], members: list[int]
) -> None:
    """The salt kept by an edit: names changed, times moved, the test decoded from its
    stored form: every member stays in the variation at the same place."""
    before = a_test(audience_id, salt, shares)
    stored = msgspec.json.decode(msgspec.json.encode(before), type=AbTest)
    renamed = msgspec.structs.replace(
        a_test(audience_id, salt, shares, names="Renamed"), updated_ms=999
    )
    for mpid in members:
        place = before.names().index(before.variation_of(mpid))
        assert stored.variation_of(mpid) == before.variation_of(mpid)
        assert renamed.names().index(renamed.variation_of(mpid)) == place


@settings(max_examples=200)
@given(audience_ids, salts, percentages(), st.lists(mpids, min_size=1, max_size=50))
def test_a_variation_added_at_the_end_takes_members_from_the_control_only(
    audience_id: int, salt: str, shares: list[int], members: list[int]
) -> None:
    control = 100 - sum(shares)
    if control == 0 or len(shares) == 5:
        return
    before = a_test(audience_id, salt, shares)
    after = a_test(audience_id, salt, [*shares, control])
    for mpid in members:
        old, new = before.variation_of(mpid), after.variation_of(mpid)
        assert old == new or (old == CONTROL and new == f"V{len(shares)}")


@settings(max_examples=100)
@given(audience_ids, salts, mpids)
def test_the_point_is_in_range_and_depends_on_audience_and_salt(
    audience_id: int, salt: str, mpid: int
) -> None:
    point = assign_point(audience_id, salt, mpid)
    assert 0.0 <= point < 100.0
    assert assign_point(audience_id, salt, mpid) == point


def test_different_salts_or_audiences_split_the_same_people_differently() -> None:
    people = range(2_000)
    base = [assign_point(1, "a" * 32, m) < 50 for m in people]
    other_salt = [assign_point(1, "b" * 32, m) < 50 for m in people]
    other_audience = [assign_point(2, "a" * 32, m) < 50 for m in people]
    # Independent halves agree on about half the people, never on all.
    assert 800 < sum(x == y for x, y in zip(base, other_salt, strict=True)) < 1_200
    assert 800 < sum(x == y for x, y in zip(base, other_audience, strict=True)) < 1_200


_IN_ANOTHER_PROCESS = """
import json, sys
from kindred.audiences.abtest import AbTest, Variation
test = AbTest(audience_id=7, salt=sys.argv[1], created_ms=1, updated_ms=1,
              variations=[Variation(name="A", percentage=30), Variation(name="B", percentage=45)])
print(json.dumps([test.variation_of(int(m)) for m in sys.argv[2:]]))
"""


@pytest.mark.parametrize("hash_seed", ["0", "12345"])
def test_another_process_assigns_everyone_alike(hash_seed: str) -> None:
    """A restart (here: another interpreter, another hash seed) reads the stored test and
    puts every member where this process does."""
    chosen = random.Random(3)
    members = [chosen.getrandbits(64) - 2**63 for _ in range(300)]
    test = a_test(7, "0f" * 16, [30, 45])
    here = [v.replace("V0", "A").replace("V1", "B") for v in map(test.variation_of, members)]
    src = Path(__file__).resolve().parents[3] / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", _IN_ANOTHER_PROCESS, "0f" * 16, *map(str, members)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert json.loads(done.stdout) == here


@settings(max_examples=8, deadline=None)
@given(audience_ids, salts, percentages(), st.integers(min_value=0, max_value=2**32))
def test_a_large_random_population_splits_within_one_point_of_the_percentages(
    audience_id: int, salt: str, shares: list[int], seed: int
) -> None:
    chosen = random.Random(seed)
    test = a_test(audience_id, salt, shares)
    counts = Counter(test.variation_of(chosen.getrandbits(64) - 2**63) for _ in range(POPULATION))
    wanted = {f"V{i}": p for i, p in enumerate(shares)} | {CONTROL: test.control_percentage}
    for name, percentage in wanted.items():
        share = counts[name] / POPULATION * 100
        assert abs(share - percentage) <= TOLERANCE_POINTS, (name, share, percentage)


def test_a_connection_of_the_full_audience_sends_everyone_a_variation_only_its_own() -> None:
    test = a_test(3, "ab" * 16, [50])
    mpid = next(m for m in range(100) if test.variation_of(m) == "V0")
    assert sends_member(None, None, mpid)
    assert sends_member(test, "V0", mpid)
    assert not sends_member(test, CONTROL, mpid)
    assert not sends_member(None, "V0", mpid)  # no test: a variation has nobody


def variations(*shares: tuple[str, int]) -> list[Variation]:
    return [Variation(name=n, percentage=p) for n, p in shares]


@pytest.mark.parametrize(
    ("given_variations", "path", "words"),
    [
        (variations(("A", 60), ("B", 50)), "variations[1].percentage", "'B'"),
        (variations(("A", 101)), "variations[0].percentage", "1..100"),
        (variations(("A", 0)), "variations[0].percentage", "1..100"),
        (variations(*((f"V{n}", 5) for n in range(6))), "variations", "at most 5"),
        (variations(("control", 10)), "variations[0].name", "control's name"),
        (variations(("A", 10), ("a", 10)), "variations[1].name", "used twice"),
        (variations(("", 10)), "variations[0].name", "1..100 characters"),
        (variations((" A", 10)), "variations[0].name", "surrounding"),
    ],
)
def test_variations_refused_name_the_one_at_fault(
    given_variations: list[Variation], path: str, words: str
) -> None:
    with pytest.raises(InvalidBatch) as refused:
        checked_variations(given_variations)
    assert refused.value.path == path
    assert words in str(refused.value)


def test_variations_up_to_100_leave_the_control_the_rest() -> None:
    kept = checked_variations(variations(("Email", 40), ("Push", 40)))
    test = AbTest(audience_id=1, salt="s", variations=kept, created_ms=0, updated_ms=0)
    assert test.control_percentage == 20
    assert test.names() == ["Email", "Push", CONTROL]
    full = AbTest(
        audience_id=1,
        salt="s",
        variations=checked_variations(variations(("A", 60), ("B", 40))),
        created_ms=0,
        updated_ms=0,
    )
    assert full.control_percentage == 0
    assert CONTROL not in {full.variation_of(m) for m in range(2_000)}
    assert checked_variations([]) == []
