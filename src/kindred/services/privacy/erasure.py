"""Erasure of a data subject from every store (RET-3, BEY-6), in one transaction.

What goes: the subject's profiles and the stubs merged into them (with their calculated
attribute states and memberships, which live in the profile), every identity link to them,
their event-log entries (and those of no profile holding one of their identities), refused
and quarantined batches holding one of their identities, their merge-ledger entries (with
the snapshots), their membership log, and their outbox rows and dead letters. Each
membership is ended with an exit in the membership log (reason "erased"), which forwarding
sends to the audience's connections as a removal carrying the identities it needs, as
nothing else of the subject is left to read when it is sent.

Safe with several processes: the subject's identities are locked as ingest locks them, and
a profile is deleted only at the version read; a lost race runs the erasure again. A later
batch with the same identities finds no link and starts a new profile.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import msgspec

from kindred.audiences.definition import ERASED_EXIT, MembershipChange
from kindred.domain.apply import identity_keys
from kindred.domain.dsr import DsrSummary
from kindred.domain.profile import Profile
from kindred.ports import Clock, ConcurrentUpdate
from kindred.services.forwarding.transactions import Transactions
from kindred.services.privacy.subjects import SubjectFinder

__all__ = ["ERASED", "Erasure", "needles_of"]

log = logging.getLogger("kindred.privacy")

ERASED = ERASED_EXIT  # the reason of the membership exits an erasure writes
_ATTEMPTS = 5


class Erasure:
    def __init__(self, subjects: SubjectFinder, transactions: Transactions, clock: Clock) -> None:
        self._subjects = subjects
        self._transactions = transactions
        self._clock = clock

    def erase(self, scope: str, identities: Mapping[str, str], mpid: int | None) -> DsrSummary:
        """Erase the subject the identities (or the MPID) name in the scope; what went."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return self._erase_once(scope, identities, mpid)
            except ConcurrentUpdate:
                if attempt == _ATTEMPTS:
                    raise
                log.info("erasure in %s collided with a write (attempt %d)", scope, attempt)
        raise AssertionError("unreachable")

    def _erase_once(
        self, scope: str, identities: Mapping[str, str], mpid: int | None
    ) -> DsrSummary:
        live = self._subjects.live(scope, identities, mpid)
        stubs = self._subjects.merged_into(live)
        now = self._clock.now_ms()
        erased: dict[int, Profile] = {}
        summary = DsrSummary()
        with self._transactions.begin(erased) as uow:
            loaded = uow.profiles.load([*live, *stubs])
            profiles = _subject_profiles(loaded, live, scope)
            keys = sorted({k for p in profiles for k in identity_keys(p)})
            uow.identities.lock(scope, keys)
            exits: list[MembershipChange] = []
            for profile in profiles:
                if profile.merged_into is None:
                    summary.profiles += 1
                else:
                    summary.merged_profiles += 1
                summary.identity_links += len(identity_keys(profile))
                exits.extend(
                    MembershipChange(
                        audience_id=audience_id,
                        mpid=profile.mpid,
                        entered=False,
                        at_ms=now,
                        reason=ERASED,
                    )
                    for audience_id in sorted(profile.memberships)
                )
                erased[profile.mpid] = profile
                uow.profiles.delete(profile)
            mpids = [p.mpid for p in profiles]
            needles = needles_of(profiles, identities, mpid)
            summary.events = uow.log.erase(mpids, needles)
            summary.rejects = uow.rejects.erase(needles)
            summary.merges = uow.ledger.erase(mpids)
            summary.outbox, summary.dead_letters = uow.outbox.erase(mpids)
            summary.membership_log = uow.memberships.erase_log(mpids)
            summary.memberships = len(exits)
            uow.memberships.append(exits)
        return summary


def _subject_profiles(loaded: Mapping[int, Profile], live: list[int], scope: str) -> list[Profile]:
    """The live profiles, and the stubs merged into them (or into those), as this
    transaction reads them: a profile no longer merged into the subject is not theirs."""
    kept = {m for m in live if m in loaded and loaded[m].merged_into is None}
    grown = True
    while grown:
        grown = False
        for mpid, profile in loaded.items():
            if mpid not in kept and profile.merged_into in kept:
                kept.add(mpid)
                grown = True
    return [loaded[m] for m in sorted(kept) if loaded[m].scope == scope]


def needles_of(
    profiles: list[Profile], identities: Mapping[str, str], mpid: int | None
) -> list[bytes]:
    """What a stored batch body holds when it names the subject: each identity value as a
    JSON string, each MPID as a JSON string or number."""
    values = set(identities.values())
    for profile in profiles:
        values.update(k.value for k in identity_keys(profile))
    numbers = {p.mpid for p in profiles} | ({mpid} if mpid is not None else set())
    needles = {msgspec.json.encode(v) for v in values if v}
    for number in numbers:
        needles.update((f'"{number}"'.encode(), f":{number}".encode(), f": {number}".encode()))
    return sorted(needles)
