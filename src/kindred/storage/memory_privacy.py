"""The memory store's data subject requests, results and signed receipts."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from kindred.audiences.definition import ERASED_EXIT
from kindred.domain.dsr import DsrRequest, DsrStatus
from kindred.domain.identities import IdentityKey
from kindred.domain.receipts import ReceiptRecord
from kindred.ports import (
    Delivery,
)
from kindred.storage.memory_state import MemoryState, holds, replace_dsr

__all__ = ["MemoryPrivacy"]


class MemoryPrivacy:
    """Data subject requests, their results and erasure receipts, and the residue check."""

    _state: MemoryState
    _lock: threading.RLock

    def insert_dsr(self, request: DsrRequest, callbacks: Sequence[Delivery] = ()) -> str:
        with self._lock:
            requests = self._state.dsr
            if (request.workspace_id, request.request_id) in requests:
                return "duplicate"
            if any(
                r.workspace_id == request.workspace_id
                and r.request_type == request.request_type
                and r.is_open
                and r.subject_key == request.subject_key
                for r in requests.values()
            ):
                return "conflict"
            requests[(request.workspace_id, request.request_id)] = request
            self._state.deliveries.add(callbacks)
            return "created"

    def get_dsr(self, workspace_id: int, request_id: str) -> DsrRequest | None:
        return self._state.dsr.get((workspace_id, request_id))

    def list_dsr(
        self, workspace_id: int | None, group_id: str | None, limit: int
    ) -> list[DsrRequest]:
        with self._lock:
            found = [
                r
                for r in self._state.dsr.values()
                if (workspace_id is None or r.workspace_id == workspace_id)
                and (group_id is None or r.group_id == group_id)
            ]
        found.sort(key=lambda r: (r.received_ms, r.request_id), reverse=True)
        return found[:limit]

    def update_dsr(self, request: DsrRequest, callbacks: Sequence[Delivery] = ()) -> bool:
        with self._lock:
            return replace_dsr(self._state, request, callbacks)

    def due_dsr(self, now_ms: int, stale_before_ms: int, limit: int) -> list[DsrRequest]:
        with self._lock:
            found = [
                r
                for r in self._state.dsr.values()
                if (r.status == DsrStatus.PENDING and r.due_ms <= now_ms)
                or (r.status == DsrStatus.IN_PROGRESS and r.status_ms < stale_before_ms)
            ]
        found.sort(key=lambda r: (r.due_ms, r.workspace_id, r.request_id))
        return found[:limit]

    def save_dsr_result(self, workspace_id: int, request_id: str, body: bytes | None) -> None:
        with self._lock:
            if body is None:
                self._state.dsr_results.pop((workspace_id, request_id), None)
            else:
                self._state.dsr_results[(workspace_id, request_id)] = body

    def dsr_result(self, workspace_id: int, request_id: str) -> bytes | None:
        return self._state.dsr_results.get((workspace_id, request_id))

    def save_receipt(self, record: ReceiptRecord) -> None:
        with self._lock:
            self._state.receipts[record.receipt_id] = record

    def get_receipt(self, receipt_id: str) -> ReceiptRecord | None:
        return self._state.receipts.get(receipt_id)

    def list_receipts(self, workspace_id: int | None, limit: int) -> list[ReceiptRecord]:
        with self._lock:
            found = [
                r
                for r in self._state.receipts.values()
                if workspace_id is None or r.workspace_id == workspace_id
            ]
        found.sort(key=lambda r: (r.made_ms, r.receipt_id), reverse=True)
        return found[:limit]

    def erasure_residue(
        self,
        scope: str,
        mpids: Sequence[int],
        identities: Sequence[IdentityKey],
        needles: Sequence[bytes],
        before_ms: int,
    ) -> dict[str, int]:
        gone = set(mpids)
        with self._lock:
            state = self._state
            profiles = state.profiles
            links = sum(1 for linked in state.identities.values() for m in linked if m in gone)
            for key in identities:
                for m in state.identities.get((scope, key), set()) - gone:
                    stored = profiles.get(m)
                    links += stored is None or stored.created_ms < before_ms
            deliveries = state.deliveries
            return {
                "profiles": sum(1 for m in gone if m in profiles),
                "identity_links": links,
                "event_log": sum(
                    1
                    for e in state.log
                    if e.mpid in gone
                    or (e.mpid is None and e.received_ms < before_ms and holds(e.body, needles))
                ),
                "rejects": sum(
                    1 for r in state.rejects if r.received_ms < before_ms and holds(r.body, needles)
                ),
                "audience_memberships": sum(
                    len(p.memberships) for m, p in profiles.items() if m in gone
                ),
                "membership_log": sum(
                    1 for c in state.memberships if c.mpid in gone and c.reason != ERASED_EXIT
                ),
                "merge_ledger": sum(
                    1 for m in state.merges if m.survivor in gone or m.merged in gone
                ),
                "outbox": sum(
                    1 for d in deliveries.outbox if d.mpid in gone and d.created_ms < before_ms
                ),
                "dead_letters": sum(
                    1
                    for d in deliveries.dead
                    if d.delivery.mpid in gone and d.delivery.created_ms < before_ms
                ),
            }
