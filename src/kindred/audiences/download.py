"""An audience download (AUD-9), the pure part: which rows a member gives, the names of the
archive and of its files, the counts each file and the manifest carry.

A download is a ZIP archive with one CSV file per part (today one part per audience; an
A/B variation will be a part of its own, `DownloadPart.variant`) and `manifest.json`. A CSV
file has a row per identity of a member of a chosen type: `mpid, scanned_timestamp_ms,
identity_value, identity_type`."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

import msgspec

from kindred.domain.profile import Profile

__all__ = [
    "CSV_HEADER",
    "DownloadPart",
    "FileCounts",
    "archive_name",
    "file_name",
    "manifest",
    "member_rows",
]

CSV_HEADER = ("mpid", "scanned_timestamp_ms", "identity_value", "identity_type")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NOT_NAME = re.compile(r"[^A-Za-z0-9]+")


class DownloadPart(msgspec.Struct, frozen=True, kw_only=True):
    """One CSV file of a download: an audience's members (or, once audiences have A/B
    variations, a variation's)."""

    audience_id: int
    name: str
    # The audience's workspaces: the device identities of their devices count.
    workspaces: tuple[int, ...]
    variant: str | None = None


def member_rows(
    profile: Profile, workspaces: Collection[int], identity_types: Sequence[str]
) -> list[tuple[str, str]]:
    """The (identity type, value) rows a member gives, in the order of `identity_types`:
    for each type its user identity, then the device identities of that type on the
    profile's devices in `workspaces` (sorted); each pair once."""
    seen: set[tuple[str, str]] = set()
    rows: list[tuple[str, str]] = []
    devices: dict[str, set[str]] = {}
    for workspace_id in workspaces:
        workspace = profile.workspaces.get(workspace_id)
        if workspace is None:
            continue
        for device in workspace.devices.values():
            for id_type, value in device.identities.items():
                devices.setdefault(id_type, set()).add(value)
    for id_type in identity_types:
        entry = profile.user_identities.get(id_type)
        found = [entry.value] if entry is not None else []
        found.extend(sorted(devices.get(id_type, ())))
        for value in found:
            if (id_type, value) not in seen:
                seen.add((id_type, value))
                rows.append((id_type, value))
    return rows


class FileCounts:
    """What a file's entry in the manifest says, counted as its rows are written."""

    def __init__(self, file_name: str, part: DownloadPart, identity_types: Sequence[str]) -> None:
        self.file_name = file_name
        self.part = part
        self.total_users = 0
        self.total_rows = 0
        self.rows_by_identity = dict.fromkeys(identity_types, 0)
        self.min_timestamp_ms: int | None = None
        self.max_timestamp_ms: int | None = None

    def add(self, rows: Sequence[tuple[str, str]], scanned_ms: int) -> None:
        if not rows:
            return
        self.total_users += 1
        self.total_rows += len(rows)
        for id_type, _ in rows:
            self.rows_by_identity[id_type] += 1
        if self.min_timestamp_ms is None or scanned_ms < self.min_timestamp_ms:
            self.min_timestamp_ms = scanned_ms
        if self.max_timestamp_ms is None or scanned_ms > self.max_timestamp_ms:
            self.max_timestamp_ms = scanned_ms

    def entry(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "file_name": self.file_name,
            "audience_id": self.part.audience_id,
        }
        if self.part.variant is not None:
            found["variant"] = self.part.variant
        found.update(
            min_timestamp_ms=self.min_timestamp_ms,
            max_timestamp_ms=self.max_timestamp_ms,
            total_users=self.total_users,
            total_rows=self.total_rows,
            rows_by_identity=self.rows_by_identity,
        )
        return found


def _stamp(at_ms: int) -> str:
    """`172136Nov292018`: hours, minutes, seconds, month, day, year (UTC), as the product
    names its files."""
    seconds, _ = divmod(at_ms, 1000)
    days, rest = divmod(seconds, 86_400)
    year, month, day = _civil(days)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}{minutes:02d}{secs:02d}{_MONTHS[month - 1]}{day:02d}{year:04d}"


def _civil(days: int) -> tuple[int, int, int]:
    """Year, month, day of a count of days since 1970-01-01 (proleptic Gregorian)."""
    z = days + 719_468
    era = (z if z >= 0 else z - 146_096) // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if month <= 2 else 0), month, day


def iso_utc(at_ms: int) -> str:
    """`2019-01-02T21:06:20.021Z`."""
    seconds, millis = divmod(at_ms, 1000)
    days, rest = divmod(seconds, 86_400)
    year, month, day = _civil(days)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{year:04d}-{month:02d}-{day:02d}T{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}Z"


def file_name(part: DownloadPart, at_ms: int) -> str:
    """`8754_PotentialParisians_172136Nov292018.csv`: the audience id, its name's letters
    and digits (and the variation's), when the download was made."""
    label = _NOT_NAME.sub("", part.name.title()) or "Audience"
    if part.variant is not None:
        label += "_" + (_NOT_NAME.sub("", part.variant.title()) or "Variant")
    return f"{part.audience_id}_{label}_{_stamp(at_ms)}.csv"


def archive_name(download_id: str, at_ms: int) -> str:
    """`KindredAudiences_204223Jan022019_9dd9.zip`."""
    return f"KindredAudiences_{_stamp(at_ms)}_{download_id[:4]}.zip"


def manifest(
    *,
    download_id: str,
    archive: str,
    audience_ids: Sequence[int],
    identity_types: Sequence[str],
    generated_ms: int,
    sample: int | None,
    files: Sequence[FileCounts],
) -> dict[str, Any]:
    """`manifest.json`: the seed's fields, and `sample` (the users asked for per file, or
    null for the whole audience)."""
    by_identity = dict.fromkeys(identity_types, 0)
    for counts in files:
        for id_type, rows in counts.rows_by_identity.items():
            by_identity[id_type] += rows
    mins = [f.min_timestamp_ms for f in files if f.min_timestamp_ms is not None]
    maxes = [f.max_timestamp_ms for f in files if f.max_timestamp_ms is not None]
    return {
        "archive_name": archive,
        "id": download_id,
        "audience_ids": list(audience_ids),
        "included_identities": list(identity_types),
        "manifest_generated": iso_utc(generated_ms),
        "sample": sample,
        "min_timestamp_ms": min(mins) if mins else None,
        "max_timestamp_ms": max(maxes) if maxes else None,
        "total_rows": sum(f.total_rows for f in files),
        "rows_by_identity": by_identity,
        "files": [f.entry() for f in files],
    }
