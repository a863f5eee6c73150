"""Erasure receipts (BEY-6): each completed erasure (a data subject request's, or one
profile of a bulk deletion) gets a receipt of what it removed from each store part and
which outputs were sent removals, signed with the processor's key and kept in the store,
in the erasure's own transaction (`maker`).

A verification checks two things: that the receipt is as signed (its signature, by a
certificate of this processor: the current one or one rotated out), and that nothing of
the subject is stored again or still (`DsrStore.erasure_residue`: its MPIDs in every
part, the identities it was named by in links, the event log and refused batches).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Protocol

import msgspec

from kindred.domain.errors import NotFound
from kindred.domain.identities import IdentityKey
from kindred.domain.receipts import (
    RESIDUE_PARTS,
    ErasureReceipt,
    ReceiptRecord,
    SignedReceipt,
)
from kindred.ports import Clock, DsrStore
from kindred.services.privacy.erasure import Erased, ReceiptMaker, subject_needles
from kindred.services.privacy.signing import (
    ProcessorKey,
    Signer,
    certificate_fingerprint,
    verify_signature,
)

__all__ = ["ReceiptMakers", "Receipts", "Verification"]

log = logging.getLogger("kindred.privacy")

_ENCODE = msgspec.json.Encoder()


class ReceiptStore(DsrStore, Protocol):
    """The receipts, and what a verification reads again."""


class ReceiptMakers(Protocol):
    """The maker of one erasure's receipt, with the signer loaded already."""

    def __call__(
        self,
        *,
        request_id: str | None = None,
        workspace_id: int | None = None,
        identities: Mapping[str, str] | None = None,
    ) -> ReceiptMaker: ...


class Verification(msgspec.Struct, kw_only=True):
    """What `kindred dsr verify` found: `ok` only when the signature holds, its certificate
    is this processor's and nothing of the subject remains in any part."""

    receipt_id: str
    signature_valid: bool
    certificate_trusted: bool
    certificate_sha256: str
    residue: dict[str, int]
    problems: list[str]
    ok: bool


class Receipts:
    def __init__(
        self, store: ReceiptStore, key: ProcessorKey, clock: Clock, processor_domain: str
    ) -> None:
        self._store = store
        self._key = key
        self._clock = clock
        self._domain = processor_domain

    @property
    def key(self) -> ProcessorKey:
        return self._key

    def maker(
        self,
        *,
        origin: str,
        request_id: str | None = None,
        workspace_id: int | None = None,
        identities: Mapping[str, str] | None = None,
    ) -> ReceiptMaker | None:
        """What signs the receipt of an erasure about to run, in the erasure's transaction
        (`Erasure.erase`). The key is loaded now, before that transaction starts: loading
        may write to the store (the key is made on first use), which must not happen
        inside it. A receipt that cannot be made (the key unreadable, or signing failing)
        is logged and the erasure goes ahead without one (None, here or from the maker):
        the subject's erasure does not wait on its proof."""
        makers = self.makers(origin=origin, about=request_id)
        if makers is None:
            return None
        return makers(request_id=request_id, workspace_id=workspace_id, identities=identities)

    def makers(self, *, origin: str, about: str | None = None) -> ReceiptMakers | None:
        """As `maker`, for several erasures of one call (a bulk deletion): the key loaded
        once, before their transactions; an unreadable key logged once, not per erasure.
        `about`: what the log names (default: the deletion's origin)."""
        named = about or f"of a {origin} deletion"
        try:
            signer = self._key.signer()
        except Exception:
            log.exception("no receipt for the erasure %s: the processor key is unreadable", named)
            return None

        def maker_of(
            *,
            request_id: str | None = None,
            workspace_id: int | None = None,
            identities: Mapping[str, str] | None = None,
        ) -> ReceiptMaker:
            def make(erased: Erased) -> ReceiptRecord | None:
                try:
                    return self._signed(
                        erased,
                        signer,
                        origin=origin,
                        request_id=request_id,
                        workspace_id=workspace_id,
                        identities=identities,
                    )
                except Exception:
                    log.exception("no receipt for the erasure %s", request_id or named)
                    return None

            return make

        return maker_of

    def _signed(
        self,
        erased: Erased,
        signer: Signer,
        *,
        origin: str,
        request_id: str | None,
        workspace_id: int | None,
        identities: Mapping[str, str] | None,
    ) -> ReceiptRecord:
        """The receipt of one erasure, signed (not kept)."""
        receipt_id = str(uuid.uuid4())
        receipt = ErasureReceipt(
            receipt_id=receipt_id,
            processor_domain=self._domain,
            origin=origin,
            request_id=request_id,
            workspace_id=workspace_id,
            scope=erased.scope,
            erased_ms=erased.erased_ms,
            subject_mpids=erased.mpids,
            subject_identities=erased.identity_digests,
            parts=erased.parts,
            outputs=erased.outputs,
        )
        payload = _ENCODE.encode(receipt)
        signed = SignedReceipt(
            payload=payload.decode(),
            signature=signer.sign(payload),
            certificate=signer.certificate,
            certificate_sha256=signer.fingerprint,
        )
        return ReceiptRecord(
            receipt_id=receipt_id,
            request_id=request_id,
            workspace_id=workspace_id,
            made_ms=self._clock.now_ms(),
            signed=signed,
            identities=dict(identities or {}),
        )

    def get(self, receipt_id: str) -> ReceiptRecord:
        found = self._store.get_receipt(receipt_id.lower())
        if found is None:
            raise NotFound(f"no receipt {receipt_id}")
        return found

    def list(self, workspace_id: int | None, limit: int = 100) -> list[ReceiptRecord]:
        return self._store.list_receipts(workspace_id, limit)

    def verify(self, receipt_id: str) -> Verification:
        """Check the receipt's signature and look again for the subject in every part."""
        record = self.get(receipt_id)
        signed = record.signed
        problems: list[str] = []
        valid = verify_signature(signed.certificate, signed.payload.encode(), signed.signature)
        if not valid:
            problems.append("the signature does not match the receipt (altered or not ours)")
        try:
            fingerprint = certificate_fingerprint(signed.certificate)
        except ValueError:
            fingerprint = ""
        trusted = fingerprint in self._key.trusted() and fingerprint == signed.certificate_sha256
        if not trusted:
            problems.append("the receipt is not signed by a certificate of this processor")
        try:
            receipt = signed.receipt()
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            problems.append(f"the receipt cannot be read: {exc}")
            return _verification(
                record,
                valid=valid,
                trusted=trusted,
                fingerprint=fingerprint,
                residue={},
                problems=problems,
            )
        if receipt.receipt_id != record.receipt_id:
            problems.append(f"the signed receipt is {receipt.receipt_id}, not {receipt_id}")
        keys = [IdentityKey(t, v) for t, v in sorted(record.identities.items())]
        needles = subject_needles(record.identities.values(), receipt.subject_mpids)
        residue = self._store.erasure_residue(
            receipt.scope, receipt.subject_mpids, keys, needles, receipt.erased_ms
        )
        for part in RESIDUE_PARTS:
            if residue.get(part):
                problems.append(f"{part}: {residue[part]} row(s) of the subject remain")
        return _verification(
            record,
            valid=valid,
            trusted=trusted,
            fingerprint=fingerprint,
            residue=residue,
            problems=problems,
        )


def _verification(
    record: ReceiptRecord,
    *,
    valid: bool,
    trusted: bool,
    fingerprint: str,
    residue: dict[str, int],
    problems: list[str],
) -> Verification:
    return Verification(
        receipt_id=record.receipt_id,
        signature_valid=valid,
        certificate_trusted=trusted,
        certificate_sha256=fingerprint,
        residue=residue,
        problems=problems,
        ok=not problems,
    )
