"""Which outbox rows a logged batch, a membership change or an erasure makes (ENR-1,
BEY-5, RET-3): one per enabled connection that matches (an erasure: one per output that
accepts erasures), under the connections and audiences of one definitions version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import msgspec

from kindred.audiences.abtest import AbTest, variant_audience_name
from kindred.audiences.definition import AudienceDef, MembershipChange
from kindred.domain.enrich import all_identities
from kindred.domain.profile import Profile
from kindred.domain.tenancy import Tenancy
from kindred.ports import (
    BatchStatus,
    Delivery,
    LogEntry,
)
from kindred.services.forwarding.catalog import OutputCatalog, OutputsAndConnections

__all__ = ["ERASURE_KIND", "ErasureNote", "MembershipNote", "Router", "erasure_source"]

# The kind of the outbox row that tells an output a subject was erased (RET-3).
ERASURE_KIND = "erasure"


def erasure_source(erasure_id: str, output: str) -> str:
    """The `source` of an erasure's outbox row to an output: how its delivery status is
    found again."""
    return f"erasure:{erasure_id}:{output}"


class ErasureNote(msgspec.Struct, frozen=True, kw_only=True):
    """The body of an "erasure" outbox row: the erased subject as the output knew it
    (what it may hold of them), nothing else of them being left to read."""

    erasure_id: str
    output: str
    mpid: int
    merged_mpids: list[int]
    identities: list[tuple[str, str]]
    erased_ms: int


class MembershipNote(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The body of a "membership" outbox row. `identities` only on the exit of an erased
    profile: (type, value) of every identity it held, what a removal is sent with."""

    audience_id: int
    audience_name: str
    entered: bool
    at_ms: int
    identities: list[tuple[str, str]] | None = None


class _EventsOnly(msgspec.Struct):
    events: list[msgspec.Raw] | None = None


_EVENTS_ONLY = msgspec.json.Decoder(_EventsOnly)
_NOTE = msgspec.json.Encoder()
_ERASURE = msgspec.json.Encoder()


class Router:
    """Which outbox rows a logged batch or a membership change makes."""

    def __init__(
        self,
        catalog: OutputCatalog,
        tenancy: Tenancy,
        audiences: Callable[[int], Mapping[int, AudienceDef]],
        tests: Callable[[int], Mapping[int, AbTest]] | None = None,
    ) -> None:
        """`audiences`: every audience by id, at a definitions version; `tests`: their A/B
        tests by audience id, at a definitions version (none: no variation connection
        sends anything)."""
        self._catalog = catalog
        self._tenancy = tenancy
        self._audiences = audiences
        self._tests = tests or (lambda _version: {})

    def for_batch(self, entry: LogEntry, version: int) -> list[Delivery]:
        """The rows of a logged batch, under the connections at `version`."""
        applied = entry.status == BatchStatus.APPLIED and entry.mpid is not None
        if not applied and entry.status != BatchStatus.READ_ONLY:
            return []
        wanted = [
            c
            for c in self._catalog.at(version).event_connections
            if c.enabled and c.input == entry.input
        ]
        if not wanted or not _has_events(entry.body):
            return []  # batches without events go to no event output (ENR-1)
        return [
            Delivery(
                connection=c.name,
                kind="batch",
                workspace_id=entry.workspace_id,
                created_ms=entry.received_ms,
                body=entry.body,
                mpid=entry.mpid if applied else None,
                source=entry.input,
                client_ip=entry.client_ip,
                historical=entry.historical,
            )
            for c in wanted
        ]

    def for_memberships(
        self,
        changes: Sequence[MembershipChange],
        version: int,
        erased: Mapping[int, Profile] | None = None,
    ) -> list[Delivery]:
        """The rows of membership changes, under the connections at `version`; the exits
        of `erased` profiles carry their identities (`MembershipNote.identities`)."""
        defs = self._catalog.at(version)
        if not changes or (
            not defs.audience_connections
            and not any(c.audience_events for c in defs.event_connections)
        ):
            return []
        audiences = self._audiences(version)
        tests = self._tests(version)
        rows: list[Delivery] = []
        for change in changes:
            audience = audiences.get(change.audience_id)
            if audience is None:
                continue
            gone = (erased or {}).get(change.mpid)
            note = MembershipNote(
                audience_id=audience.id,
                audience_name=audience.external_name or audience.name,
                entered=change.entered,
                at_ms=change.at_ms,
                identities=None if gone is None or change.entered else all_identities(gone),
            )
            full = _NOTE.encode(note)
            variation = _variation_of(tests.get(audience.id), change.mpid)
            for name, workspace_id, variant in self._membership_connections(defs, audience):
                body = full
                if variant is not None:
                    if variant != variation:
                        continue  # another variation's member, or the test ended
                    named = variant_audience_name(note.audience_name, variant)
                    body = _NOTE.encode(msgspec.structs.replace(note, audience_name=named))
                rows.append(
                    Delivery(
                        connection=name,
                        kind="membership",
                        workspace_id=workspace_id,
                        created_ms=change.at_ms,
                        body=body,
                        mpid=change.mpid,
                    )
                )
        return rows

    def for_erasure(
        self, erased: Mapping[int, Profile], version: int, *, erasure_id: str, at_ms: int
    ) -> list[Delivery]:
        """One row per output that accepts erasures, over the first of its connections (by
        name) serving the erased subject's identity scope."""
        live = [p for p in erased.values() if p.merged_into is None]
        if not live:
            return []
        subject = live[0]
        note = ErasureNote(
            erasure_id=erasure_id,
            output="",
            mpid=subject.mpid,
            merged_mpids=sorted(m for m in erased if m != subject.mpid),
            identities=sorted({i for p in erased.values() for i in all_identities(p)}),
            erased_ms=at_ms,
        )
        defs = self._catalog.at(version)
        audiences = self._audiences(version)
        rows = []
        for output in defs.outputs:
            if not output.accepts_erasures:
                continue
            serving = sorted(self._scope_connections(defs, audiences, output.name, subject.scope))
            if serving:
                name, workspace_id = serving[0]
                rows.append(
                    Delivery(
                        connection=name,
                        kind=ERASURE_KIND,
                        workspace_id=workspace_id,
                        created_ms=at_ms,
                        body=_ERASURE.encode(msgspec.structs.replace(note, output=output.name)),
                        source=erasure_source(erasure_id, output.name),
                    )
                )
        return rows

    def _scope_connections(
        self,
        defs: OutputsAndConnections,
        audiences: Mapping[int, AudienceDef],
        output: str,
        scope: str,
    ) -> Iterator[tuple[str, int]]:
        """(connection, workspace) of the output's enabled connections whose workspace is
        in the identity scope."""
        for e in defs.event_connections:
            source = self._tenancy.input_named(e.input)
            if not (e.enabled and e.output == output and source is not None):
                continue
            if source.workspace.identity_scope == scope:
                yield e.name, source.workspace.workspace_id
        for a in defs.audience_connections:
            audience = audiences.get(a.audience_id)
            if not (a.enabled and a.output == output and audience is not None):
                continue
            for workspace_id in audience.workspaces:
                workspace = self._tenancy.workspaces.get(workspace_id)
                if workspace is not None and workspace.identity_scope == scope:
                    yield a.name, workspace_id
                    break

    def _membership_connections(
        self, defs: OutputsAndConnections, audience: AudienceDef
    ) -> Iterator[tuple[str, int, str | None]]:
        """(connection, workspace, variation: None for the full audience)."""
        for a in defs.audience_connections:
            if a.enabled and a.audience_id == audience.id:
                yield a.name, audience.workspaces[0] if audience.workspaces else 0, a.variation
        for e in defs.event_connections:
            source = self._tenancy.input_named(e.input)
            if not (e.enabled and e.audience_events and source is not None):
                continue
            if source.workspace.workspace_id in audience.workspaces:
                yield e.name, source.workspace.workspace_id, None


def _variation_of(test: AbTest | None, mpid: int) -> str | None:
    """The member's variation under a running test; None without one (or ended)."""
    if test is None or test.ended_ms is not None:
        return None
    return test.variation_of(mpid)


def _has_events(body: bytes) -> bool:
    try:
        return bool(_EVENTS_ONLY.decode(body).events)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return False
