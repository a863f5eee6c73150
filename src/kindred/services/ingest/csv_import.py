"""CSV import of identities and user attributes (ING-7), through the ingest pipeline.

Header names choose what a column is: `mpid`; an identity type in any spelling clients use
(`email`, `customerid`, `other_id_2`, `ios_idfa` ...); anything else a user attribute. A
name may be forced to an attribute with an `attribute:` prefix. Empty cells are absent.
Each row becomes one batch with the CSV source priority; a bad row is reported by its line
number and every other row still goes in. Re-importing the same file changes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from kindred.domain.errors import InvalidBatch
from kindred.domain.identities import DEVICE_IDENTITY_TYPES, canonical_identity_type
from kindred.domain.tenancy import InputDef
from kindred.services.writes.commands import Accepted, BatchOutcome
from kindred.wire.observe import observe

__all__ = ["CsvImporter", "ImportReport", "RowError"]

_CHUNK = 500
_ENCODER = msgspec.json.Encoder()


class RowError(msgspec.Struct, frozen=True):
    line: int
    error: str


@dataclass
class ImportReport:
    rows: int = 0
    applied: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "applied": self.applied,
            "unchanged": self.unchanged,
            "errors": [{"line": e.line, "error": e.error} for e in self.errors],
        }


class CsvImporter:
    def __init__(
        self, apply: Callable[[Sequence[Accepted]], list[BatchOutcome]], now_ms: Callable[[], int]
    ) -> None:
        self._apply = apply
        self._now_ms = now_ms

    def run(self, text: str, source: InputDef) -> ImportReport:
        report = ImportReport()
        file_id = hashlib.sha256(text.encode()).hexdigest()[:16]
        pending: list[Accepted] = []
        for line, row_or_error in _rows(text):
            report.rows += 1
            if isinstance(row_or_error, RowError):
                report.errors.append(row_or_error)
                continue
            try:
                pending.append(self._accept(row_or_error, source, f"csv:{file_id}:{line}"))
            except (InvalidBatch, msgspec.DecodeError) as exc:
                report.errors.append(RowError(line, str(exc)))
            if len(pending) >= _CHUNK:
                self._flush(pending, report)
        self._flush(pending, report)
        return report

    def _accept(self, row: dict[str, Any], source: InputDef, request_id: str) -> Accepted:
        row["source_request_id"] = request_id
        body = _ENCODER.encode(row)
        return Accepted(source, observe(body, source, self._now_ms()), body)

    def _flush(self, pending: list[Accepted], report: ImportReport) -> None:
        if not pending:
            return
        for outcome in self._apply(pending):
            if outcome.status == "applied":
                report.applied += 1
            else:
                report.unchanged += 1
        pending.clear()


def _rows(text: str) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        yield 1, RowError(1, f"not CSV: {exc}")
        return
    if not header:
        return
    columns = [_column(name) for name in header]
    while True:
        try:
            row = next(reader, None)
        except csv.Error as exc:
            # The reader cannot go on past it (a cell over the field limit, a stray NUL):
            # the rows before it stand, those after it are not read.
            yield reader.line_num, RowError(reader.line_num, f"not CSV, reading stopped: {exc}")
            return
        if row is None:
            return
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            yield line, RowError(line, f"expected {len(columns)} cells, found {len(row)}")
            continue
        yield line, _batch(columns, row)


def _column(name: str) -> tuple[str, str]:
    """(kind, key): kind is mpid, user_identity, device_identity or attribute."""
    name = name.strip()
    if name.lower().startswith("attribute:"):
        return "attribute", name.split(":", 1)[1]
    if name.lower() == "mpid":
        return "mpid", "mpid"
    canonical = canonical_identity_type(name)
    if canonical is None:
        return "attribute", name
    kind = "device_identity" if canonical in DEVICE_IDENTITY_TYPES else "user_identity"
    return kind, canonical


def _batch(columns: list[tuple[str, str]], row: list[str]) -> dict[str, Any]:
    batch: dict[str, Any] = {"environment": "production"}
    identities: dict[str, str] = {}
    devices: dict[str, str] = {}
    attributes: dict[str, str] = {}
    for (kind, key), cell in zip(columns, row, strict=True):
        value = cell.strip()
        if not value:
            continue
        if kind == "mpid":
            batch["mpid"] = value
        elif kind == "user_identity":
            identities[key] = value
        elif kind == "device_identity":
            devices[key] = value
        else:
            attributes[key] = cell
    batch.update(user_identities=identities, user_attributes=attributes)
    if "device_application_stamp" in devices:
        batch["mp_deviceid"] = devices.pop("device_application_stamp")
    if devices:
        batch["device_info"] = devices
    return batch
