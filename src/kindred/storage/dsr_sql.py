"""Data subject requests in the SQL stores (table `dsr_requests`): the rows and the
statements both stores run, in the placeholder style of each (`?` or `%s`). The request is
kept whole as JSON in `doc`; the columns are what is looked up."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from kindred.domain.dsr import DsrRequest
from kindred.domain.identities import IdentityKey
from kindred.domain.receipts import ReceiptRecord
from kindred.ports import Delivery
from kindred.storage.erasure_sql import residue
from kindred.storage.outbox_sql import (
    DELIVERY_COLUMNS,
    Cursor,
    SqlDeliveryStore,
    delivery_row,
)

__all__ = ["SAVE_RECEIPT", "SqlDsrStore", "receipt_row"]

_ENCODE = msgspec.json.Encoder()
_DECODE = msgspec.json.Decoder(DsrRequest)
_DECODE_RECEIPT = msgspec.json.Decoder(ReceiptRecord)

_COLUMNS = (
    "workspace_id, request_id, request_type, subject_key, status, group_id, received_ms,"
    " due_ms, status_ms, version, doc"
)


# An erasure's receipt, inserted or replaced (in `?` style: each store puts its own mark).
SAVE_RECEIPT = (
    "INSERT INTO erasure_receipts (receipt_id, request_id, workspace_id, made_ms, doc)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (receipt_id) DO UPDATE SET"
    " request_id = excluded.request_id, workspace_id = excluded.workspace_id,"
    " made_ms = excluded.made_ms, doc = excluded.doc"
)


def receipt_row(record: ReceiptRecord) -> tuple[object, ...]:
    return (
        record.receipt_id,
        record.request_id,
        record.workspace_id,
        record.made_ms,
        _ENCODE.encode(record).decode(),
    )


def dsr_row(request: DsrRequest) -> tuple[object, ...]:
    return (
        request.workspace_id,
        request.request_id,
        request.request_type,
        request.subject_key,
        request.status,
        request.group_id,
        request.received_ms,
        request.due_ms,
        request.status_ms,
        request.version,
        _ENCODE.encode(request).decode(),
    )


def dsr_of(doc: str | bytes) -> DsrRequest:
    return _DECODE.decode(doc)


@dataclass(frozen=True)
class DsrStatements:
    insert: str
    exists: str
    get: str
    update: str
    due: str
    save_result: str
    result: str

    @classmethod
    def of(cls, m: str) -> DsrStatements:
        key = f"workspace_id = {m} AND request_id = {m}"
        return cls(
            insert=f"INSERT INTO dsr_requests ({_COLUMNS}) VALUES ({', '.join([m] * 11)})"
            " ON CONFLICT DO NOTHING",
            exists=f"SELECT 1 FROM dsr_requests WHERE {key}",
            get=f"SELECT doc FROM dsr_requests WHERE {key}",
            update=(
                f"UPDATE dsr_requests SET status = {m}, due_ms = {m}, status_ms = {m},"
                f" version = {m}, doc = {m} WHERE {key} AND version = {m}"
            ),
            due=(
                f"SELECT doc FROM dsr_requests WHERE (status = 'pending' AND due_ms <= {m})"
                f" OR (status = 'in_progress' AND status_ms < {m})"
                f" ORDER BY due_ms, workspace_id, request_id LIMIT {m}"
            ),
            save_result=f"UPDATE dsr_requests SET result = {m} WHERE {key}",
            result=f"SELECT result FROM dsr_requests WHERE {key}",
        )

    def listing(
        self, m: str, workspace_id: int | None, group_id: str | None, limit: int
    ) -> tuple[str, tuple[object, ...]]:
        clauses: list[str] = []
        params: list[object] = []
        if workspace_id is not None:
            clauses.append(f"workspace_id = {m}")
            params.append(workspace_id)
        if group_id is not None:
            clauses.append(f"group_id = {m}")
            params.append(group_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        statement = (
            f"SELECT doc FROM dsr_requests{where}"
            f" ORDER BY received_ms DESC, request_id DESC LIMIT {m}"
        )
        return statement, (*params, limit)


def update_params(request: DsrRequest) -> tuple[object, ...]:
    return (
        request.status,
        request.due_ms,
        request.status_ms,
        request.version,
        _ENCODE.encode(request).decode(),
        request.workspace_id,
        request.request_id,
        request.version - 1,
    )


class SqlDsrStore(SqlDeliveryStore):
    """`DsrStore` over the transactions and placeholder of `SqlDeliveryStore`."""

    # The store's test of `body` holding a needle (a parameter).
    _CONTAINS = "instr(body, ?) > 0"

    @property
    def _dsr_sql(self) -> DsrStatements:
        return DsrStatements.of(self._MARK)

    def insert_dsr(self, request: DsrRequest, callbacks: Sequence[Delivery] = ()) -> str:
        sql = self._dsr_sql
        with self._delivery_tx() as cursor:
            cursor.execute(sql.insert, dsr_row(request))
            if cursor.rowcount == 1:
                self._enqueue(cursor, callbacks)
                return "created"
            cursor.execute(sql.exists, (request.workspace_id, request.request_id))
            return "duplicate" if cursor.fetchone() is not None else "conflict"

    def get_dsr(self, workspace_id: int, request_id: str) -> DsrRequest | None:
        with self._delivery_read() as cursor:
            cursor.execute(self._dsr_sql.get, (workspace_id, request_id))
            row = cursor.fetchone()
        return None if row is None else dsr_of(row[0])

    def list_dsr(
        self, workspace_id: int | None, group_id: str | None, limit: int
    ) -> list[DsrRequest]:
        statement, params = self._dsr_sql.listing(self._MARK, workspace_id, group_id, limit)
        with self._delivery_read() as cursor:
            cursor.execute(statement, params)
            return [dsr_of(row[0]) for row in cursor.fetchall()]

    def update_dsr(self, request: DsrRequest, callbacks: Sequence[Delivery] = ()) -> bool:
        with self._delivery_tx() as cursor:
            cursor.execute(self._dsr_sql.update, update_params(request))
            if cursor.rowcount != 1:
                return False
            self._enqueue(cursor, callbacks)
            return True

    def _enqueue(self, cursor: Cursor, deliveries: Sequence[Delivery]) -> None:
        """Outbox rows in the transaction of the cursor, in order."""
        for delivery in deliveries:
            cursor.execute(
                self._sql(
                    f"INSERT INTO outbox ({DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                delivery_row(delivery),
            )

    def due_dsr(self, now_ms: int, stale_before_ms: int, limit: int) -> list[DsrRequest]:
        with self._delivery_read() as cursor:
            cursor.execute(self._dsr_sql.due, (now_ms, stale_before_ms, limit))
            return [dsr_of(row[0]) for row in cursor.fetchall()]

    def save_dsr_result(self, workspace_id: int, request_id: str, body: bytes | None) -> None:
        with self._delivery_tx() as cursor:
            cursor.execute(self._dsr_sql.save_result, (body, workspace_id, request_id))

    def dsr_result(self, workspace_id: int, request_id: str) -> bytes | None:
        with self._delivery_read() as cursor:
            cursor.execute(self._dsr_sql.result, (workspace_id, request_id))
            row = cursor.fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def save_receipt(self, record: ReceiptRecord) -> None:
        with self._delivery_tx() as cursor:
            cursor.execute(self._sql(SAVE_RECEIPT), receipt_row(record))

    def get_receipt(self, receipt_id: str) -> ReceiptRecord | None:
        with self._delivery_read() as cursor:
            cursor.execute(
                f"SELECT doc FROM erasure_receipts WHERE receipt_id = {self._MARK}", (receipt_id,)
            )
            row = cursor.fetchone()
        return None if row is None else _DECODE_RECEIPT.decode(row[0])

    def list_receipts(self, workspace_id: int | None, limit: int) -> list[ReceiptRecord]:
        m = self._MARK
        where = "" if workspace_id is None else f" WHERE workspace_id = {m}"
        params: tuple[object, ...] = (limit,) if workspace_id is None else (workspace_id, limit)
        with self._delivery_read() as cursor:
            cursor.execute(
                f"SELECT doc FROM erasure_receipts{where}"
                f" ORDER BY made_ms DESC, receipt_id DESC LIMIT {m}",
                params,
            )
            return [_DECODE_RECEIPT.decode(row[0]) for row in cursor.fetchall()]

    def erasure_residue(
        self,
        scope: str,
        mpids: Sequence[int],
        identities: Sequence[IdentityKey],
        needles: Sequence[bytes],
        before_ms: int,
    ) -> dict[str, int]:
        with self._delivery_read() as cursor:

            def execute(sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
                cursor.execute(sql, params)
                return list(cursor.fetchall())

            return residue(
                execute,
                self._MARK,
                self._CONTAINS,
                scope=scope,
                mpids=mpids,
                identities=identities,
                needles=needles,
                before_ms=before_ms,
            )
