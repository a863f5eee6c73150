"""Which partition of the batch log a batch goes to (OPS-2, scale-out).

A batch's key is the user it is about as far as the edge can tell without the store: the
MPID it names, else its highest-priority usable identity under its account's identity
priority (user identities before device identities). Batches with the same key land in
the same partition and are applied in the order they were appended, so one user's batches
stay in order. Two batches of one user keyed differently (one naming the MPID, one only
an email) may be applied in either order, as two processes applying them would; merges
across partitions stay correct through the locks the store takes on identities.

The hash is fixed (BLAKE2b of the key's UTF-8), so every process, of any version, agrees.
"""

from __future__ import annotations

import hashlib

from kindred.domain.observation import Observation
from kindred.domain.tenancy import IdentityPolicy
from kindred.identity.resolve import usable_identities

__all__ = ["UNKEYED", "partition_key", "partition_of"]

# The key of a batch naming no MPID and no usable identity (it will be logged unresolved).
UNKEYED = "-"


def partition_key(obs: Observation, scope: str, policy: IdentityPolicy) -> str:
    """The batch's key in its identity scope."""
    if obs.mpid is not None:
        return f"{scope}\x1fmpid\x1f{obs.mpid}"
    user, device, _ = usable_identities(obs, policy)
    for identities in (user, device):
        if identities:
            best = min(identities, key=lambda t: (policy.rank(t), t))
            return f"{scope}\x1f{best}\x1f{identities[best]}"
    return f"{scope}\x1f{UNKEYED}"


def partition_of(key: str, partitions: int) -> int:
    """The key's partition among `partitions` (> 0)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions
