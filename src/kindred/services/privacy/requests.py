"""Data subject requests (RET-3): made over the OpenDSR API or the CLI, kept in the store,
processed in the background once due.

Statuses: pending (waiting: an erasure's waiting period, cancellable) -> in_progress ->
completed, or cancelled (while pending) or failed (processing raised; the error is kept).
`run_due` is the periodic job of every server process (and `kindred dsr run-due`): each
request is claimed by moving it to in_progress at the version read, so with several
processes one of them alone processes it; one left in progress by a process that died is
taken up again after `stale_s`. An erasure's request is stored as completed (with its
receipt and callbacks) in the erasure's own transaction: a process that dies has either
erased the subject and completed the request, or done neither (the request is left in
progress, to be taken up again).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from kindred.domain.dsr import DAY_MS, DsrRequest, DsrStatus, due_ms
from kindred.domain.errors import Conflict, Gone, NotFound
from kindred.domain.receipts import ReceiptRecord
from kindred.domain.tenancy import WorkspaceDef
from kindred.ports import Clock, Delivery, DsrStore, UnitOfWork
from kindred.services.privacy.callbacks import CallbackMaker
from kindred.services.privacy.erasure import Erased, Erasure, ReceiptMaker
from kindred.services.privacy.exports import ExportReader, gather, readable, subject_document
from kindred.services.privacy.receipts import Receipts
from kindred.services.privacy.subjects import SubjectFinder
from kindred.wire.dsr import ParsedRequest, status_body

__all__ = ["Callbacks", "DsrPolicy", "DsrService", "RequestTaken", "Results", "RunReport"]

log = logging.getLogger("kindred.privacy")

_ENCODE = msgspec.json.Encoder()
_DECODE_DOC = msgspec.json.Decoder()


class PrivacyStore(DsrStore, ExportReader, Protocol):
    """The requests, and the committed data a subject's is read from."""

    def erasure_message_states(self, sources: Sequence[str]) -> dict[str, str]: ...


class Callbacks(Protocol):
    """The outbox rows a request stored with a new status makes (its status callbacks)."""

    def rows(self, request: DsrRequest) -> Sequence[Delivery]:
        """Those of the request's status as it is now."""
        ...

    def maker(self, request: DsrRequest) -> CallbackMaker:
        """What makes those of the request's next status inside an erasure's transaction,
        ready before that transaction starts."""
        ...


class _NoCallbacks:
    def rows(self, request: DsrRequest) -> Sequence[Delivery]:
        del request
        return ()

    def maker(self, request: DsrRequest) -> CallbackMaker:
        del request
        return lambda _request, _queued: []


class RequestTaken(Exception):
    """The stored request moved on from the version claimed: another process took it over
    (it was left in progress long enough), and that one does the work."""


@dataclass(frozen=True)
class DsrPolicy:
    waiting_period_ms: int = 7 * DAY_MS
    # The wait of an erasure whose caller asked to skip the waiting period.
    skip_waiting_ms: int = 0
    results_kept_ms: int = 7 * DAY_MS
    # An in_progress request untouched this long is taken up again (its process died).
    stale_ms: int = 3_600_000
    # How often the background job runs: part of the expected completion time.
    run_interval_ms: int = 60_000
    chunk: int = 50
    # Where the server is reached: the status callbacks' `results_url` and `receipt_url`.
    public_url: str | None = None


@dataclass(frozen=True)
class Results:
    body: bytes
    media_type: str


class RunReport(msgspec.Struct, kw_only=True):
    completed: int = 0
    failed: int = 0
    results_dropped: int = 0


class DsrService:
    def __init__(
        self,
        store: PrivacyStore,
        erasure: Erasure,
        subjects: SubjectFinder,
        clock: Clock,
        policy: DsrPolicy | None = None,
        *,
        receipts: Receipts | None = None,
    ) -> None:
        """`receipts`: where completed erasures' signed receipts are made (none: no
        receipts, as in some tests)."""
        self._store = store
        self._erasure = erasure
        self._subjects = subjects
        self._clock = clock
        self.policy = policy or DsrPolicy()
        self.receipts = receipts
        self._callbacks: Callbacks = _NoCallbacks()

    def on_change(self, callbacks: Callbacks) -> None:
        """`callbacks`: the outbox rows a request stored with a new status makes (its status
        callbacks), written in the transaction that stores it."""
        self._callbacks = callbacks

    def _insert(self, request: DsrRequest) -> str:
        return self._store.insert_dsr(request, self._callbacks.rows(request))

    def _update(self, request: DsrRequest) -> bool:
        """Store a new status of the request, with its callbacks."""
        return self._store.update_dsr(request, self._callbacks.rows(request))

    def status_object(
        self, request: DsrRequest, base_url: str | None = None, *, queued: Collection[str] = ()
    ) -> dict[str, Any]:
        """The request's OpenDSR status object; URLs under `base_url` (default: the
        configured public URL; none known: no URLs). `queued`: sources of its erasure
        messages waiting in the outbox of the transaction that stores this status (pending,
        not read: that transaction has not committed)."""
        base = (base_url or self.policy.public_url or "").rstrip("/")
        results_url = receipt_url = None
        if base and request.status == DsrStatus.COMPLETED:
            path = f"{base}/v3/requests/{request.request_id}"
            if request.request_type != "erasure":
                results_url = f"{path}/results"
            elif request.receipt_id is not None:
                receipt_url = f"{path}/receipt"
        return status_body(
            request,
            self.expected_ms(request),
            results_url,
            receipt_url,
            self._erasure_messages(request, queued),
        )

    def _erasure_messages(
        self, request: DsrRequest, queued: Collection[str]
    ) -> list[dict[str, str]]:
        """Each erasure message sent to an output that accepts erasures, and whether it
        was delivered, is waiting in the outbox, or failed (a dead letter)."""
        if not request.erasure_messages:
            return []
        unread = [m.source for m in request.erasure_messages if m.source not in queued]
        states = self._store.erasure_message_states(unread) if unread else {}
        states.update(dict.fromkeys(queued, "pending"))
        return [
            {
                "output": m.output,
                "connection": m.connection,
                "status": states.get(m.source, "delivered"),
            }
            for m in request.erasure_messages
        ]

    def receipt(self, workspace_id: int, request_id: str) -> ReceiptRecord:
        """A completed erasure's signed receipt; NotFound otherwise."""
        request = self.get(workspace_id, request_id)
        if request.receipt_id is None or self.receipts is None:
            raise NotFound(f"request {request.request_id} has no receipt")
        return self.receipts.get(request.receipt_id)

    # --- requests ----------------------------------------------------------------------

    def create(
        self, workspace: WorkspaceDef, made_by: str, parsed: ParsedRequest, raw: bytes
    ) -> DsrRequest:
        """Keep a new request of the workspace, made by an input (or `cli`). Conflict
        (409) when one of the same type and subject is open; DuplicateRequest when the
        workspace has used the id."""
        now = self._clock.now_ms()
        policy = self.policy
        request = DsrRequest(
            workspace_id=workspace.workspace_id,
            request_id=parsed.request_id,
            input=made_by,
            scope=workspace.identity_scope,
            regulation=parsed.regulation,
            request_type=parsed.request_type,
            identities=parsed.identities,
            mpid=parsed.mpid,
            submitted_ms=parsed.submitted_ms,
            received_ms=now,
            due_ms=due_ms(
                parsed.request_type,
                now,
                waiting_ms=policy.waiting_period_ms,
                skip_waiting_ms=policy.skip_waiting_ms,
                skip=parsed.skip_waiting_period,
            ),
            status_ms=now,
            group_id=parsed.group_id,
            callback_urls=parsed.callback_urls,
            api_version=parsed.api_version,
            skip_waiting_period=parsed.skip_waiting_period,
            raw=raw,
        )
        outcome = self._insert(request)
        if outcome == "duplicate":
            raise DuplicateRequest(f"subject_request_id {request.request_id} is used already")
        if outcome == "conflict":
            raise Conflict(
                f"an open {request.request_type} request (pending or in progress) names the"
                " same subject identities"
            )
        return request

    def get(self, workspace_id: int, request_id: str) -> DsrRequest:
        """The workspace's request; NotFound for an unknown id (another workspace's too)."""
        found = self._store.get_dsr(workspace_id, request_id.lower())
        if found is None:
            raise NotFound(f"no request {request_id}")
        return found

    def list(
        self, workspace_id: int | None, group_id: str | None = None, limit: int = 1000
    ) -> list[DsrRequest]:
        return self._store.list_dsr(workspace_id, group_id, limit)

    def cancel(self, workspace_id: int, request_id: str) -> DsrRequest:
        """Cancel a pending request; Conflict once it is no longer pending."""
        for _ in range(5):
            request = self.get(workspace_id, request_id)
            if request.status != DsrStatus.PENDING:
                raise Conflict(f"request {request.request_id} is {request.status}, not pending")
            cancelled = self._moved(request, DsrStatus.CANCELLED, completed=True)
            if self._update(cancelled):
                return cancelled
        raise Conflict(f"request {request_id} is changing; try again")

    def expected_ms(self, request: DsrRequest) -> int:
        """When the request is (or was) expected to be done."""
        if request.completed_ms is not None:
            return request.completed_ms
        return max(request.due_ms, request.received_ms) + self.policy.run_interval_ms

    def results(self, workspace_id: int, request_id: str) -> Results:
        """An access or portability request's results: NotFound until done and when
        nothing matched; Gone once past their time."""
        request = self.get(workspace_id, request_id)
        if request.request_type == "erasure" or request.status != DsrStatus.COMPLETED:
            raise NotFound(f"request {request.request_id} has no results")
        if (
            request.results_until_ms is not None
            and self._clock.now_ms() >= request.results_until_ms
        ):
            raise Gone(f"the results of request {request.request_id} are no longer kept")
        if not request.matched:
            raise NotFound("no records of the subject")
        body = self._store.dsr_result(workspace_id, request.request_id)
        if body is None:
            raise Gone(f"the results of request {request.request_id} are no longer kept")
        if request.request_type == "access":
            return Results(body, "text/plain; charset=utf-8")
        return Results(body, "application/json")

    # --- processing --------------------------------------------------------------------

    def run_due(self) -> RunReport:
        """Process every request due now, and drop results past their time."""
        report = RunReport()
        now = self._clock.now_ms()
        while True:
            due = self._store.due_dsr(now, now - self.policy.stale_ms, self.policy.chunk)
            done = 0
            for request in due:
                claimed = self._moved(request, DsrStatus.IN_PROGRESS)
                # Taken up again (its process died): no new status to tell.
                again = request.status == DsrStatus.IN_PROGRESS
                if not (self._store.update_dsr(claimed) if again else self._update(claimed)):
                    continue  # another process took it
                finished = self._process(claimed)
                if finished is None:
                    continue  # another process took it over meanwhile
                done += 1
                if finished.status == DsrStatus.COMPLETED:
                    report.completed += 1
                else:
                    report.failed += 1
            if len(due) < self.policy.chunk or not done:
                break
        report.results_dropped = self._drop_old_results(now)
        return report

    def process(self, workspace_id: int, request_id: str) -> DsrRequest:
        """Process one request now, whatever its due time (`kindred dsr run --now`)."""
        request = self.get(workspace_id, request_id)
        if request.status != DsrStatus.PENDING:
            raise Conflict(f"request {request.request_id} is {request.status}, not pending")
        claimed = self._moved(request, DsrStatus.IN_PROGRESS)
        if not self._update(claimed):
            raise Conflict(f"request {request_id} is changing; try again")
        finished = self._process(claimed)
        if finished is None:
            raise Conflict(f"request {request_id} was taken over by another process")
        return finished

    def _process(self, request: DsrRequest) -> DsrRequest | None:
        """Process the claimed request and store what became of it: the request as stored,
        or None when another process took it over meanwhile (it does the work)."""
        try:
            if request.request_type == "erasure":
                return self._erase(request)
            finished = self._export(request)
        except RequestTaken:
            log.info("request %s was taken over by another process", request.request_id)
            return None
        except Exception as exc:
            log.exception("data subject request %s failed", request.request_id)
            failed = self._moved(request, DsrStatus.FAILED, completed=True)
            finished = msgspec.structs.replace(failed, failure=f"{type(exc).__name__}: {exc}")
        return finished if self._update(finished) else None

    def _erase(self, request: DsrRequest) -> DsrRequest:
        """Erase the request's subject; the request is stored as completed (naming the
        receipt, with its callbacks) in the erasure's own transaction, so that both are
        committed or neither is. RequestTaken, the erasure rolled back, when the stored
        request moved on from the version claimed."""
        callbacks = self._callbacks.maker(request)
        stored: list[DsrRequest] = []

        def complete(uow: UnitOfWork, erased: Erased) -> None:
            done = _completed(self._moved(request, DsrStatus.COMPLETED, completed=True), erased)
            queued = [m.source for m in erased.erasure_messages]
            if not uow.dsr.update(done, callbacks(done, queued)):
                raise RequestTaken(request.request_id)
            stored.append(done)  # a retried attempt's comes last

        erased = self._erasure.erase(
            request.scope,
            request.identities,
            request.mpid,
            self._receipt(request),
            last_step=complete,
        )
        log.info(
            "erasure %s of workspace %d: %s",
            request.request_id,
            request.workspace_id,
            _ENCODE.encode(erased.summary).decode(),
        )
        return stored[-1]

    def _receipt(self, request: DsrRequest) -> ReceiptMaker | None:
        """What signs the erasure's receipt, kept in the erasure's transaction. A receipt
        that cannot be made (the key unreadable) is logged and the request completes
        without one, rather than failing a request whose subject is gone."""
        if self.receipts is None:
            return None
        return self.receipts.maker(
            origin="dsr",
            request_id=request.request_id,
            workspace_id=request.workspace_id,
            identities=request.identities,
        )

    def _export(self, request: DsrRequest) -> DsrRequest:
        now = self._clock.now_ms()
        live = self._subjects.live(request.scope, request.identities, request.mpid)
        export = gather(self._store, [*live, *self._subjects.merged_into(live)], now)
        document = subject_document(export, request_id=request.request_id, now_ms=now)
        if request.request_type == "access":
            body = readable(document).encode()
        else:
            body = _ENCODE.encode(document)
        if export.matched:
            self._store.save_dsr_result(request.workspace_id, request.request_id, body)
        done = self._moved(request, DsrStatus.COMPLETED, completed=True)
        return msgspec.structs.replace(
            done,
            matched=export.matched,
            results_until_ms=now + self.policy.results_kept_ms,
        )

    def _drop_old_results(self, now: int) -> int:
        dropped = 0
        for request in self._store.list_dsr(None, None, 100_000):
            until = request.results_until_ms
            if until is None or until > now or request.results_dropped_ms is not None:
                continue
            if request.matched:
                self._store.save_dsr_result(request.workspace_id, request.request_id, None)
                gone = msgspec.structs.replace(
                    request, results_dropped_ms=now, version=request.version + 1
                )
                if self._store.update_dsr(gone):
                    dropped += 1
        return dropped

    def _moved(self, request: DsrRequest, status: str, *, completed: bool = False) -> DsrRequest:
        now = self._clock.now_ms()
        return msgspec.structs.replace(
            request,
            status=status,
            status_ms=now,
            completed_ms=now if completed else request.completed_ms,
            version=request.version + 1,
        )


def _completed(done: DsrRequest, erased: Erased) -> DsrRequest:
    """The request completed by the erasure: what went, and its receipt."""
    return msgspec.structs.replace(
        done,
        summary=erased.summary,
        receipt_id=erased.receipt_id,
        erasure_messages=erased.erasure_messages,
    )


class DuplicateRequest(Conflict):
    """A subject_request_id the workspace has used already (400 in OpenDSR)."""
