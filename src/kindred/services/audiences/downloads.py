"""Audience downloads (AUD-9): a ZIP archive with one CSV file per audience and a
`manifest.json`, written as it is read, so that an audience of any size downloads in
bounded memory.

`AudienceDownloads.prepare` checks the request (the audiences exist, the identity types are
known, the sample is positive) before anything is written, so that a refusal is an ordinary
answer; `Download.chunks` then reads each audience's members a page at a time in MPID
order (`audience_members`, the index the initial syncs of connections walk), their profiles
in one read per page, and yields the archive's bytes as zipfile writes them (to a stream
it cannot seek: each entry's sizes follow it in a data descriptor). Only a page of profiles
and the deflater's window are held at once; the manifest, written last, holds counts.

A sample of N is the first N members in MPID order that have an identity of the chosen
types: MPIDs are drawn at random, so they are a uniform sample of those members, and the
same one each time while the audience does not change."""

from __future__ import annotations

import csv
import datetime
import io
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import msgspec

from kindred.audiences.abtest import AbTest
from kindred.audiences.download import (
    CSV_HEADER,
    DownloadPart,
    FileCounts,
    archive_name,
    file_name,
    manifest,
    member_rows,
)
from kindred.domain.errors import InvalidBatch
from kindred.domain.identities import canonical_identity_type
from kindred.ports import Clock, ProfileReader
from kindred.services.audiences.admin import AudienceService

__all__ = ["AudienceDownloads", "Download", "DownloadStore"]

# Members read per page (one read of their profiles each).
PAGE = 1000
# Audiences in one download at most.
MAX_AUDIENCES = 100


class DownloadStore(ProfileReader, Protocol):
    def audience_members(self, audience_id: int, after_mpid: int | None, limit: int) -> list[int]:
        """The audience's members as stored now, by MPID ascending, after `after_mpid`."""
        ...


class _Chunks:
    """The unseekable stream zipfile writes to: what it wrote since the last `take`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


class Download:
    """A download checked and named; `chunks` writes it. `manifest` is set once the last
    chunk has been yielded."""

    def __init__(
        self,
        *,
        store: DownloadStore,
        clock: Clock,
        download_id: str,
        parts: Sequence[DownloadPart],
        identity_types: Sequence[str],
        sample: int | None,
        page: int,
        test: AbTest | None = None,
    ) -> None:
        """`test`: the audience's A/B test, when the parts are its variations."""
        self._store = store
        self._test = test
        self._clock = clock
        self._page = page
        self.id = download_id
        self.parts = list(parts)
        self.identity_types = list(identity_types)
        self.sample = sample
        self.started_ms = clock.now_ms()
        self.archive_name = archive_name(download_id, self.started_ms)
        self.manifest: dict[str, object] | None = None

    def chunks(self) -> Iterator[bytes]:
        """The archive's bytes, a page of members at a time."""
        sink = _Chunks()
        files: list[FileCounts] = []
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for part in self.parts:
                counts = FileCounts(file_name(part, self.started_ms), part, self.identity_types)
                files.append(counts)
                with archive.open(self._entry(counts.file_name), "w", force_zip64=True) as entry:
                    entry.write(_csv([CSV_HEADER]))
                    for page in self._pages(part, counts):
                        entry.write(page)
                        chunk = sink.take()
                        if chunk:
                            yield chunk
            self.manifest = manifest(
                download_id=self.id,
                archive=self.archive_name,
                audience_ids=[p.audience_id for p in self.parts],
                identity_types=self.identity_types,
                generated_ms=self._clock.now_ms(),
                sample=self.sample,
                files=files,
            )
            body = msgspec.json.format(msgspec.json.encode(self.manifest))
            with archive.open(self._entry("manifest.json"), "w") as entry:
                entry.write(body)
        yield sink.take()

    def _entry(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, _zip_time(self.started_ms))
        info.compress_type = zipfile.ZIP_DEFLATED
        return info

    def _pages(self, part: DownloadPart, counts: FileCounts) -> Iterator[bytes]:
        """The part's rows as CSV, a page of members at a time."""
        after: int | None = None
        wanted = self.sample
        while wanted is None or counts.total_users < wanted:
            mpids = self._store.audience_members(part.audience_id, after, self._page)
            if not mpids:
                return
            after = mpids[-1]
            mpids = self._in_part(part, mpids)
            profiles = self._store.get_profiles(mpids)
            scanned = self._clock.now_ms()
            rows: list[tuple[object, ...]] = []
            for mpid in mpids:
                profile = profiles.get(mpid)
                if profile is None or profile.merged_into is not None:
                    continue  # erased or merged since the page was read
                found = member_rows(profile, part.workspaces, self.identity_types)
                if not found:
                    continue
                counts.add(found, scanned)
                rows.extend((mpid, scanned, value, id_type) for id_type, value in found)
                if wanted is not None and counts.total_users >= wanted:
                    break
            if rows:
                yield _csv(rows)

    def _in_part(self, part: DownloadPart, mpids: list[int]) -> list[int]:
        """The members of the page in the part: a variation's, those assigned to it."""
        test = self._test
        if part.variant is None or test is None:
            return mpids
        return [m for m in mpids if test.variation_of(m) == part.variant]


def _csv(rows: Sequence[Sequence[object]]) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerows(rows)
    return text.getvalue().encode()


def _zip_time(at_ms: int) -> tuple[int, int, int, int, int, int]:
    """The ZIP entries' date and time (UTC; ZIP keeps no zone, and no year before 1980)."""
    at = datetime.datetime.fromtimestamp(max(at_ms, 315_532_800_000) / 1000, datetime.UTC)
    return (at.year, at.month, at.day, at.hour, at.minute, at.second)


class AudienceDownloads:
    """Downloads of audiences' members (AUD-9)."""

    def __init__(
        self,
        store: DownloadStore,
        audiences: AudienceService,
        clock: Clock,
        *,
        page: int = PAGE,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        tests: Callable[[int], AbTest | None] = lambda _audience_id: None,
    ) -> None:
        """`tests`: an audience's running A/B test (AUD-8), for downloads of variations."""
        self._tests = tests
        self._store = store
        self._audiences = audiences
        self._clock = clock
        self._page = page
        self._new_id = new_id

    def prepare(
        self,
        audience_ids: Sequence[int],
        identity_types: Sequence[str],
        sample: int | None,
        variations: Sequence[str] = (),
    ) -> Download:
        """A download of the audiences (each once, in the order given) with the identities
        of the types given (canonical spellings, each once); `sample`: at most that many
        users per file. Refused (`InvalidBatch` naming the field, `NotFound` for an
        audience) before anything is read."""
        if not audience_ids:
            raise InvalidBatch("name at least one audience", "audience_ids")
        ids = list(dict.fromkeys(audience_ids))
        if len(ids) > MAX_AUDIENCES:
            raise InvalidBatch(f"at most {MAX_AUDIENCES} audiences per download", "audience_ids")
        if not identity_types:
            raise InvalidBatch("name at least one identity type", "identity_types")
        types: list[str] = []
        for index, name in enumerate(identity_types):
            found = canonical_identity_type(name.strip())
            if found is None:
                raise InvalidBatch(f"unknown identity type {name!r}", f"identity_types[{index}]")
            if found not in types:
                types.append(found)
        if sample is not None and sample < 1:
            raise InvalidBatch("sample is a number of users, 1 or more", "sample")
        if variations:
            return self._of_variations(ids, types, sample, variations)
        parts = []
        for audience_id in ids:
            audience = self._audiences.get(audience_id)
            parts.append(
                DownloadPart(
                    audience_id=audience.id,
                    name=audience.name,
                    workspaces=tuple(audience.workspaces),
                )
            )
        return Download(
            store=self._store,
            clock=self._clock,
            download_id=self._new_id(),
            parts=parts,
            identity_types=types,
            sample=sample,
            page=self._page,
        )

    def _of_variations(
        self,
        ids: list[int],
        types: list[str],
        sample: int | None,
        variations: Sequence[str],
    ) -> Download:
        """A download of an audience's A/B test variations (AUD-8, AUD-9): a CSV each."""
        if len(ids) != 1:
            raise InvalidBatch("variations go with one audience", "variations")
        audience = self._audiences.get(ids[0])
        test = self._tests(audience.id)
        if test is None or test.ended_ms is not None:
            raise InvalidBatch(f"audience {audience.id} has no A/B test", "variations")
        chosen = list(dict.fromkeys(v.strip() for v in variations))
        for index, name in enumerate(chosen):
            if name not in test.names():
                known = ", ".join(repr(n) for n in test.names())
                raise InvalidBatch(
                    f"no variation {name!r} in the test of audience {audience.id} ({known})",
                    f"variations[{index}]",
                )
        parts = [
            DownloadPart(
                audience_id=audience.id,
                name=audience.name,
                workspaces=tuple(audience.workspaces),
                variant=name,
            )
            for name in chosen
        ]
        return Download(
            store=self._store,
            clock=self._clock,
            download_id=self._new_id(),
            parts=parts,
            identity_types=types,
            sample=sample,
            page=self._page,
            test=test,
        )
