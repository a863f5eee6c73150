"""Erasure of a data subject from every store (RET-3, BEY-6), in one transaction.

What goes: the subject's profiles and the stubs merged into them (with their calculated
attribute states and memberships, which live in the profile), every identity link to them,
their event-log entries (and those of no profile holding one of their identities), refused
and quarantined batches holding one of their identities, their merge-ledger entries (with
the snapshots), their membership log, and their outbox rows and dead letters. Each
membership is ended with an exit in the membership log (reason "erased"), which forwarding
sends to the audience's connections as a removal carrying the identities it needs, as
nothing else of the subject is left to read when it is sent.

What went is handed back (`Erased`): the counts, and for the signed receipt
(services.privacy.receipts) each part's rows by id and digest, the same on every store, and
the removals queued for each connection. The receipt, given a maker, is signed and kept in
the erasure's own transaction, after its forwarding step: both are committed or neither. A
caller's last step runs there too, after the receipt (a data subject request is stored as
completed in it, naming the receipt): it commits with the erasure, or neither does.

Safe with several processes: the subject's identities are locked as ingest locks them, and
a profile is deleted only at the version read; a lost race runs the erasure again. A later
batch with the same identities finds no link and starts a new profile.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping

import msgspec

from kindred.audiences.definition import ERASED_EXIT, MembershipChange
from kindred.domain.apply import identity_keys
from kindred.domain.dsr import DsrSummary, ErasureMessage
from kindred.domain.profile import Profile
from kindred.domain.receipts import (
    PART_NAMES,
    OutputRemoval,
    ReceiptRecord,
    RemovedPart,
    identity_digest,
    row_digest,
)
from kindred.ports import Clock, ConcurrentUpdate, Delivery, UnitOfWork
from kindred.services.forwarding.router import ERASURE_KIND, ErasureNote, MembershipNote
from kindred.services.forwarding.transactions import Transactions
from kindred.services.privacy.subjects import SubjectFinder

__all__ = [
    "ERASED",
    "Erased",
    "ErasedStep",
    "Erasure",
    "ReceiptMaker",
    "needles_of",
    "subject_needles",
]

log = logging.getLogger("kindred.privacy")

ERASED = ERASED_EXIT  # the reason of the membership exits an erasure writes
_ATTEMPTS = 5
_PROFILE = msgspec.json.Encoder()
_NOTE = msgspec.json.Decoder(MembershipNote)
_ERASURE_NOTE = msgspec.json.Decoder(ErasureNote)


class Erased(msgspec.Struct, kw_only=True):
    """What one erasure removed: the counts (`summary`), and for its receipt each store
    part's rows (ids and digests) and the removals it queued for outputs."""

    scope: str
    erased_ms: int
    summary: DsrSummary
    mpids: list[int] = msgspec.field(default_factory=list)
    identity_digests: list[str] = msgspec.field(default_factory=list)
    parts: list[RemovedPart] = msgspec.field(default_factory=list)
    outputs: list[OutputRemoval] = msgspec.field(default_factory=list)
    # The erasure messages queued for outputs that accept erasures (RET-3).
    erasure_id: str = ""
    erasure_messages: list[ErasureMessage] = msgspec.field(default_factory=list)
    # Its signed receipt, kept in the erasure's transaction (None: none was made).
    receipt_id: str | None = None


# Signs the receipt of an erasure (what it removed, once the forwarding step has queued its
# removals), inside the erasure's transaction; None: no receipt for this one.
ReceiptMaker = Callable[[Erased], ReceiptRecord | None]

# A caller's last step in the erasure's transaction, once the receipt is kept (what went,
# `receipt_id` set); what it raises rolls the whole erasure back.
ErasedStep = Callable[[UnitOfWork, Erased], None]


class Erasure:
    def __init__(self, subjects: SubjectFinder, transactions: Transactions, clock: Clock) -> None:
        self._subjects = subjects
        self._transactions = transactions
        self._clock = clock

    def erase(
        self,
        scope: str,
        identities: Mapping[str, str],
        mpid: int | None,
        receipt: ReceiptMaker | None = None,
        *,
        last_step: ErasedStep | None = None,
    ) -> Erased:
        """Erase the subject the identities (or the MPID) name in the scope; what went.
        `receipt`: makes the erasure's signed receipt, kept in the same transaction as the
        erasure (after its forwarding step, so that it lists every removal queued): both
        are committed or neither is. `last_step`: run in that transaction after the
        receipt is kept, with what went; a lost race runs the whole erasure again, this
        step included."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return self._erase_once(scope, identities, mpid, receipt, last_step)
            except ConcurrentUpdate:
                if attempt == _ATTEMPTS:
                    raise
                log.info("erasure in %s collided with a write (attempt %d)", scope, attempt)
        raise AssertionError("unreachable")

    def _erase_once(
        self,
        scope: str,
        identities: Mapping[str, str],
        mpid: int | None,
        receipt: ReceiptMaker | None,
        last_step: ErasedStep | None,
    ) -> Erased:
        live = self._subjects.live(scope, identities, mpid)
        stubs = self._subjects.merged_into(live)
        removal = _Removal(scope, self._clock.now_ms(), identities)
        queued: list[Delivery] = []
        done: list[Erased] = []

        def finish(uow: UnitOfWork) -> None:
            """Once the forwarding step has queued the removals: what went, its receipt
            kept with it, then the caller's last step."""
            erased = removal.erased(queued)
            record = receipt(erased) if receipt is not None else None
            if record is not None:
                uow.receipts.save(record)
                erased.receipt_id = record.receipt_id
            if last_step is not None:
                last_step(uow, erased)
            done.append(erased)

        with self._transactions.begin(
            removal.profiles,
            queued,
            erasure_id=removal.erasure_id,
            erased_ms=removal.erased_ms,
            before_commit=finish,
        ) as uow:
            removal.remove(uow, [*live, *stubs], live, mpid)
        return done[0]


class _Removal:
    """One attempt at an erasure, filled in while its transaction runs."""

    def __init__(self, scope: str, erased_ms: int, identities: Mapping[str, str]) -> None:
        self.scope = scope
        self.erased_ms = erased_ms
        self.identities = identities
        self.erasure_id = str(uuid.uuid4())
        # The profiles erased, as they were (the forwarding step reads them for removals).
        self.profiles: dict[int, Profile] = {}
        self.summary = DsrSummary()
        self.parts = {name: RemovedPart(part=name) for name in PART_NAMES}

    def remove(self, uow: UnitOfWork, mpids: list[int], live: list[int], mpid: int | None) -> None:
        """The subject's profiles (the live ones and the stubs merged into them, `mpids`)
        and every row of theirs in each part; an exit for each membership."""
        profiles = _subject_profiles(uow.profiles.load(mpids), live, self.scope)
        uow.identities.lock(self.scope, sorted({k for p in profiles for k in identity_keys(p)}))
        exits: list[MembershipChange] = []
        for profile in profiles:
            exits.extend(self._profile(profile))
            uow.profiles.delete(profile)
        gone = [p.mpid for p in profiles]
        needles = needles_of(profiles, self.identities, mpid)
        rows = {
            "event_log": uow.log.erase(gone, needles),
            "rejects": uow.rejects.erase(needles),
            "merge_ledger": uow.ledger.erase(gone),
            "membership_log": uow.memberships.erase_log(gone),
        }
        rows["outbox"], rows["dead_letters"] = uow.outbox.erase(gone)
        for name, removed in rows.items():
            for row in removed:
                self.parts[name].add(str(row.id), row.digest)
        summary = self.summary
        summary.events = len(rows["event_log"])
        summary.rejects = len(rows["rejects"])
        summary.merges = len(rows["merge_ledger"])
        summary.outbox = len(rows["outbox"])
        summary.dead_letters = len(rows["dead_letters"])
        summary.membership_log = len(rows["membership_log"])
        summary.memberships = len(exits)
        uow.memberships.append(exits)

    def _profile(self, profile: Profile) -> list[MembershipChange]:
        """Count and account one profile erased; the exits of its memberships."""
        if profile.merged_into is None:
            self.summary.profiles += 1
        else:
            self.summary.merged_profiles += 1
        self.summary.identity_links += len(identity_keys(profile))
        _account_profile(self.parts, profile)
        self.profiles[profile.mpid] = profile
        return [
            MembershipChange(
                audience_id=audience_id,
                mpid=profile.mpid,
                entered=False,
                at_ms=self.erased_ms,
                reason=ERASED,
            )
            for audience_id in sorted(profile.memberships)
        ]

    def erased(self, queued: list[Delivery]) -> Erased:
        """What went, with the outbox rows the transaction queued (`queued`)."""
        scope = self.scope
        named = {identity_digest(scope, t, v) for t, v in self.identities.items()}
        held = {
            identity_digest(scope, k.type, k.value)
            for p in self.profiles.values()
            for k in identity_keys(p)
        }
        return Erased(
            scope=scope,
            erased_ms=self.erased_ms,
            summary=self.summary,
            mpids=sorted(self.profiles),
            identity_digests=sorted(named | held),
            parts=[self.parts[name] for name in PART_NAMES],
            outputs=_output_removals(queued),
            erasure_id=self.erasure_id,
            erasure_messages=[
                ErasureMessage(
                    output=_ERASURE_NOTE.decode(row.body).output,
                    connection=row.connection,
                    source=row.source or "",
                )
                for row in queued
                if row.kind == ERASURE_KIND
            ],
        )


def _account_profile(parts: dict[str, RemovedPart], profile: Profile) -> None:
    """A profile's own rows in the receipt: the document, its identity links, its
    memberships and calculated attribute states (which live in the document)."""
    mpid = profile.mpid
    part = parts["profiles" if profile.merged_into is None else "merged_profiles"]
    part.add(str(mpid), row_digest("profiles", mpid, _PROFILE.encode(profile)))
    for key in identity_keys(profile):
        parts["identity_links"].add(
            identity_digest(profile.scope, key.type, key.value),
            row_digest("identity_links", profile.scope, key.type, key.value, mpid),
        )
    for audience_id, held in sorted(profile.memberships.items()):
        parts["audience_memberships"].add(
            f"{audience_id}:{mpid}",
            row_digest("audience_members", audience_id, mpid, held.since_ms),
        )
    for workspace_id, workspace in sorted(profile.workspaces.items()):
        for name, state in sorted(workspace.calculated.items()):
            parts["calculated_attributes"].add(
                f"{workspace_id}:{name}:{mpid}",
                row_digest("calculated", mpid, workspace_id, name, _PROFILE.encode(state)),
            )


def _output_removals(queued: list[Delivery]) -> list[OutputRemoval]:
    """The rows the erasure's transaction queued, by connection (audience removals)."""
    found: dict[str, OutputRemoval] = {}
    for row in queued:
        kind = "erasure" if row.kind == ERASURE_KIND else "removal"
        entry = found.setdefault(
            f"{kind}:{row.connection}", OutputRemoval(connection=row.connection, kind=kind, rows=0)
        )
        entry.rows += 1
        if row.kind == "membership":
            audience_id = _NOTE.decode(row.body).audience_id
            if audience_id not in entry.audience_ids:
                entry.audience_ids.append(audience_id)
    for entry in found.values():
        entry.audience_ids.sort()
    return [found[name] for name in sorted(found)]


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
    return subject_needles(values, numbers)


def subject_needles(values: Iterable[str], mpids: Iterable[int]) -> list[bytes]:
    """The needles of these identity values and MPIDs (see `needles_of`)."""
    needles = {msgspec.json.encode(v) for v in values if v}
    for number in mpids:
        needles.update((f'"{number}"'.encode(), f":{number}".encode(), f": {number}".encode()))
    return sorted(needles)
