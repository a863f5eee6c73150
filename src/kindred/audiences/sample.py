"""The estimator's sample (AUD-7) and what it estimates from it. Pure.

Each profile has a sample key, a hash of its MPID spread evenly over [0, SAMPLE_MODULUS).
A scope's sample is its profiles with the smallest keys: the `size` smallest, all of them
below a bound (the key of the next one), so each profile is in it exactly when its key is
below the bound, whatever the others are: a uniform sample (the hash mixes sequential MPIDs
as well as random ones) that stays put while profiles come and go, and that the stores read
as one index range (their `sample_key` column is this function, computed by the database).

An audience's size is estimated from it by scaling: the members the sample holds divided by
the fraction of keys below the bound (each profile's chance to be sampled), summed over the
audience's scopes. When the bound is SAMPLE_MODULUS the sample holds every profile and the
count is exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "RELIABLE_MEMBERS",
    "SAMPLE_MODULUS",
    "ScopeTally",
    "SizeEstimate",
    "estimate_size",
    "sample_key",
]

# Two rounds of a multiplicative hash modulo primes below 2^31: every product stays below
# 2^62, so SQLite and PostgreSQL compute the same integers as Python (migration 0020).
_P1, _A1, _B1 = 2_147_483_647, 1_327_217_885, 1_013_904_223
SAMPLE_MODULUS, _A2, _B2 = 2_147_483_629, 1_103_515_245, 12_345

# Fewer sampled members than this and the estimate's relative error (about 1/sqrt(k)) is
# over ~22%: no number is given ("~"), unless the sample is every profile (exact).
RELIABLE_MEMBERS = 20
# Two-sided 95% normal quantile, for the interval.
_Z95 = 1.96


def sample_key(mpid: int) -> int:
    """The profile's sample key (the stores' `sample_key` column)."""
    return (((mpid % _P1) * _A1 + _B1) % _P1 * _A2 + _B2) % SAMPLE_MODULUS


@dataclass(frozen=True, slots=True)
class ScopeTally:
    """One scope's sample: the members it holds, and the keys below `bound` it covers."""

    members: int
    bound: int

    @property
    def fraction(self) -> float:
        return self.bound / SAMPLE_MODULUS


@dataclass(frozen=True, slots=True)
class SizeEstimate:
    """An estimated size: `size` None when too few sampled members ("~"); `low`..`high`
    its 95% interval; `exact` when the samples hold every profile."""

    size: int | None
    low: int | None
    high: int | None
    sampled_members: int
    exact: bool

    @property
    def shown(self) -> str:
        return "~" if self.size is None else f"{self.size:,}"


def estimate_size(tallies: Sequence[ScopeTally]) -> SizeEstimate:
    """The members of each scope's sample scaled by its fraction, summed. Each profile is
    sampled independently with chance `fraction` given the bound, so the count of k members
    over n has variance n p (1 - p), estimated as k (1 - p) / p^2 once scaled."""
    members = sum(t.members for t in tallies)
    exact = all(t.bound >= SAMPLE_MODULUS for t in tallies)
    if exact:
        return SizeEstimate(members, members, members, members, True)
    if members < RELIABLE_MEMBERS:
        return SizeEstimate(None, None, None, members, False)
    size = 0.0
    variance = 0.0
    for tally in tallies:
        p = tally.fraction
        if p <= 0:
            continue
        size += tally.members / p
        variance += tally.members * (1 - p) / (p * p)
    spread = _Z95 * math.sqrt(variance)
    return SizeEstimate(
        size=round(size),
        low=max(members, math.floor(size - spread)),
        high=math.ceil(size + spread),
        sampled_members=members,
        exact=False,
    )
