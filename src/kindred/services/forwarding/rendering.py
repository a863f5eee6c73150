"""Forwarding, what is sent (ENR-1..4, AUD-11): an outbox row made into the message an
output receives, at the moment of sending: a batch enriched from the stored profile as it
is then, a membership change as the audience's add or removal (a variation's for an A/B
test), an erasure message, a status callback as written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from kindred.audiences.abtest import AbTest
from kindred.audiences.definition import AudienceDef
from kindred.domain.enrich import (
    CHANNELS,
    audience_messages,
    enrich_batch,
    membership_batch,
    removal_messages,
)
from kindred.domain.expiry import without_expired
from kindred.domain.forwarding import AudienceConnection, EventConnection
from kindred.domain.profile import Profile
from kindred.domain.tenancy import Tenancy
from kindred.ports import (
    Clock,
    Delivery,
    Message,
    ProfileReader,
)
from kindred.services.forwarding.router import ERASURE_KIND, ErasureNote, MembershipNote
from kindred.services.merges import follow_merged

__all__ = ["CALLBACK_KIND", "Renderer", "erasure_message"]


_BATCH = msgspec.json.Decoder(dict[str, Any])
_NOTE = msgspec.json.Decoder(MembershipNote)
_MESSAGE = msgspec.json.Decoder(dict[str, Any])
_ERASURE_NOTE = msgspec.json.Decoder(ErasureNote)
# An outbox row sent as it is (its body the message): a data subject request's status
# callback (services.privacy.callbacks).
CALLBACK_KIND = "callback"


class Renderer:
    """Outbox rows -> the messages an output receives, from the profile as stored now."""

    def __init__(
        self,
        store: ProfileReader,
        tenancy: Tenancy,
        audiences: Callable[[], Mapping[int, AudienceDef]] | None = None,
        clock: Clock | None = None,
        *,
        tests: Callable[[], Mapping[int, AbTest]] | None = None,
        retire: Callable[[str], None] | None = None,
    ) -> None:
        """`audiences`: every audience by id, as last committed (for initial syncs);
        `clock`: the instant attribute values past their time to live (RET-4) are left out
        of enrichment at (none: kept); `tests`: the audiences' A/B tests by audience id, as
        last committed; `retire`: deletes a variation connection whose ended test's
        removals are sent."""
        self._store = store
        self._tenancy = tenancy
        self._audiences = audiences or dict
        self._clock = clock
        self._tests = tests or dict
        self._retire = retire or (lambda _name: None)

    def audience(self, audience_id: int) -> AudienceDef | None:
        return self._audiences().get(audience_id)

    def test(self, audience_id: int) -> AbTest | None:
        return self._tests().get(audience_id)

    def retire(self, connection: str) -> None:
        self._retire(connection)

    def render(
        self, connection: EventConnection | AudienceConnection, row: Delivery, key: str = ""
    ) -> list[Message]:
        """`key`: the messages' idempotency key (default `CONNECTION:ROW`)."""
        key = key or f"{connection.name}:{row.id}"
        if row.kind == CALLBACK_KIND:
            # A status callback: the body and signature as made when the status changed.
            return [{**_MESSAGE.decode(row.body), "idempotency_key": key}]
        if row.kind == ERASURE_KIND:
            return [erasure_message(_ERASURE_NOTE.decode(row.body), key)]
        profile = self._profile(row.mpid)
        if row.kind == "membership":
            return self._membership(connection, row, profile, key)
        if not isinstance(connection, EventConnection):
            return []
        return self._batch(connection, row, _BATCH.decode(row.body), profile, key)

    def _membership(
        self,
        connection: EventConnection | AudienceConnection,
        row: Delivery,
        profile: Profile | None,
        key: str,
    ) -> list[Message]:
        note = _NOTE.decode(row.body)
        if isinstance(connection, AudienceConnection):
            if note.audience_id != connection.audience_id:
                return []  # of the audience it had before: its new sync superseded it
            if profile is not None:
                return audience_messages(
                    profile,
                    connection,
                    audience_id=note.audience_id,
                    audience_name=note.audience_name,
                    entered=note.entered,
                    at_ms=note.at_ms,
                    key=key,
                )
            if note.identities is None:
                return []
            # An erased profile's exit: sent from the identities the row carries.
            return removal_messages(
                row.mpid or 0,
                [(t, v) for t, v in note.identities],
                connection,
                audience_id=note.audience_id,
                audience_name=note.audience_name,
                at_ms=note.at_ms,
                key=key,
            )
        if profile is None:
            return []
        batch = membership_batch(note.audience_id, note.audience_name, note.entered, note.at_ms)
        return self._batch(connection, row, batch, profile, key)

    def _batch(
        self,
        connection: EventConnection,
        row: Delivery,
        batch: dict[str, Any],
        profile: Profile | None,
        key: str,
    ) -> list[Message]:
        if profile is None and row.mpid is not None:
            return []  # the user was erased since: nothing of theirs goes out
        source = self._tenancy.input_named(row.source or "")
        channel = CHANNELS.get(source.source_type.value, "unknown") if source else "unknown"
        message = enrich_batch(
            batch,
            profile,
            workspace_id=row.workspace_id,
            connection=connection,
            received_ms=row.created_ms,
            client_ip=row.client_ip,
            channel=channel,
            key=key,
            historical=row.historical,
        )
        return [] if message is None else [message]

    def _profile(self, mpid: int | None) -> Profile | None:
        """The profile now; an MPID merged into another stands for its survivor."""
        if mpid is None:
            return None
        profile = follow_merged(self._store.get_profile, self._store.get_profile(mpid))
        ttls = self._tenancy.attribute_ttls
        if profile is None or self._clock is None or not ttls:
            return profile
        return without_expired(profile, ttls, self._clock.now_ms())[0]


def erasure_message(note: ErasureNote, key: str) -> dict[str, Any]:
    """What an output that accepts erasures is sent for an erased subject (RET-3): forget
    this user, named by every MPID and identity Kindred knew them by."""
    return {
        "type": "erasure",
        "idempotency_key": key,
        "erasure_id": note.erasure_id,
        "mpid": str(note.mpid),
        "merged_mpids": [str(m) for m in note.merged_mpids],
        "identities": [{"type": t, "value": v} for t, v in note.identities],
        "timestamp_ms": note.erased_ms,
    }
