"""Which partition of the batch log a batch goes to: one user's batches to one partition,
whatever else they carry, spread evenly, the same in every process."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from kindred.domain.observation import Observation
from kindred.domain.tenancy import IdentityPolicy
from kindred.identity.partition import UNKEYED, partition_key, partition_of
from tests.strategies import identity_values, observations

POLICY = IdentityPolicy()
SCOPE = "account"


@given(observations(with_mpid=True), observations(with_mpid=True))
def test_batches_naming_one_mpid_share_a_key_whatever_their_identities(
    one: Observation, other: Observation
) -> None:
    other = msgspec.structs.replace(other, mpid=one.mpid)
    if one.mpid is not None:
        assert partition_key(one, SCOPE, POLICY) == partition_key(other, SCOPE, POLICY)


@given(observations(), identity_values(), st.sampled_from(["other", "mobile_number", "email"]))
def test_a_lower_priority_identity_added_keeps_the_key(
    obs: Observation, value: str, lower: str
) -> None:
    """A batch with a customer_id is keyed by it, whatever lower-priority identities come
    with it (customer_id is first in the default priority)."""
    keyed = msgspec.structs.replace(obs, user_identities={"customer_id": "c-1"})
    more = msgspec.structs.replace(keyed, user_identities={"customer_id": "c-1", lower: value})
    assert partition_key(keyed, SCOPE, POLICY) == partition_key(more, SCOPE, POLICY)


def test_junk_identities_never_key_a_batch() -> None:
    obs = Observation(
        received_ms=1, effective_ms=1, user_identities={"customer_id": "0", "email": "a@b.c"}
    )
    junk_only = msgspec.structs.replace(obs, user_identities={"customer_id": "0"})
    assert partition_key(obs, SCOPE, POLICY) == f"{SCOPE}\x1femail\x1fa@b.c"
    assert partition_key(junk_only, SCOPE, POLICY) == f"{SCOPE}\x1f{UNKEYED}"


def test_the_account_priority_picks_the_identity() -> None:
    obs = Observation(
        received_ms=1, effective_ms=1, user_identities={"customer_id": "c-1", "email": "a@b.c"}
    )
    email_first = IdentityPolicy(priority=("email", "customer_id"))
    assert partition_key(obs, SCOPE, POLICY).endswith("customer_id\x1fc-1")
    assert partition_key(obs, SCOPE, email_first).endswith("email\x1fa@b.c")


def test_device_identities_key_a_batch_with_no_user_identity() -> None:
    obs = Observation(received_ms=1, effective_ms=1, device_identities={"ios_idfv": "v-1"})
    assert partition_key(obs, SCOPE, POLICY) == f"{SCOPE}\x1fios_idfv\x1fv-1"


@given(st.text(), st.integers(1, 4096))
def test_a_partition_is_in_range_and_the_same_every_time(key: str, partitions: int) -> None:
    chosen = partition_of(key, partitions)
    assert 0 <= chosen < partitions
    assert partition_of(key, partitions) == chosen


def test_the_hash_is_fixed_across_versions_and_spreads_keys_evenly() -> None:
    # Pinned: a change here re-partitions a running deployment's users.
    pinned = [partition_of(f"account\x1fcustomer_id\x1fu{i}", 16) for i in range(5)]
    assert pinned == [11, 0, 1, 7, 5]
    counts = [0] * 16
    for i in range(16_000):
        counts[partition_of(f"account\x1fcustomer_id\x1fu{i}", 16)] += 1
    assert min(counts) > 800
    assert max(counts) < 1200
