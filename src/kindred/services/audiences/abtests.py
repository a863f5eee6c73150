"""Audience A/B tests (AUD-8): made, changed, shown and deleted; who is in which variation.

One test per audience: up to five variations and the control, which takes what the
variations leave of 100 percent. The test's salt is made when it is created and kept by
every later change, so members stay in their variations (`audiences.abtest`). A variation
that has connections keeps its name while they exist (they are named by it); deleting the
test ends its variation connections, sending their members' removals
(`forwarding.abtests`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Protocol

import msgspec

from kindred.audiences.abtest import (
    CONTROL,
    AbTest,
    AbTestRequest,
    checked_variations,
    variant_audience_name,
)
from kindred.domain.errors import Conflict, InvalidBatch, NotFound
from kindred.ports import Clock
from kindred.services.audiences.admin import AudienceService
from kindred.services.forwarding.abtests import AbTestBook

__all__ = ["AbTestService", "AbTestView", "ProfileVariation", "VariationView"]

# Members read per page when counting or listing a variation's.
_PAGE = 5_000


class _Members(Protocol):
    def audience_members(self, audience_id: int, after_mpid: int | None, limit: int) -> list[int]:
        """The audience's members as stored now, by MPID ascending."""
        ...


class VariationView(msgspec.Struct, frozen=True, kw_only=True):
    """A variation as shown: its share, its members now, the connections sending it and the
    audience name they send."""

    name: str
    percentage: int
    control: bool
    members: int
    audience_name: str
    connections: list[str]


class AbTestView(msgspec.Struct, frozen=True, kw_only=True):
    """A test as the admin API and CLI show it: its variations, the control last."""

    audience_id: int
    variations: list[VariationView]
    created_ms: int
    updated_ms: int
    # Connections of the full audience (not of one variation).
    full_audience_connections: list[str]


class ProfileVariation(msgspec.Struct, frozen=True, kw_only=True):
    """Which variation of an audience's test a profile is in, and whether it is a member
    of the audience now (a variation's members are the audience's members in it)."""

    audience_id: int
    variation: str
    member: bool


class AbTestService:
    """Audiences' A/B tests for the admin API, the CLI and the web UI."""

    def __init__(
        self, book: AbTestBook, audiences: AudienceService, members: _Members, clock: Clock
    ) -> None:
        self._book = book
        self._audiences = audiences
        self._members = members
        self._clock = clock

    def set(self, audience_id: int, request: AbTestRequest) -> AbTestView:
        """Create the audience's test (a new salt) or change its variations (the salt kept).
        While variations have connections the split may not change (see
        `_check_connected`)."""
        self._audiences.get(audience_id)
        variations = checked_variations(request.variations)
        now = self._clock.now_ms()
        current = self._book.get(audience_id)
        if current is not None and current.ended_ms is not None:
            raise Conflict(
                f"the deleted test of audience {audience_id} is still sending its removals;"
                " try again when its variation connections are gone"
            )
        if current is None:
            test = AbTest(
                audience_id=audience_id,
                salt=secrets.token_hex(16),
                variations=variations,
                created_ms=now,
                updated_ms=now,
            )
        else:
            test = msgspec.structs.replace(current, variations=variations, updated_ms=now)
            self._check_connected(current, test)
        self._book.save(test)
        return self.show(audience_id)

    def get(self, audience_id: int) -> AbTest:
        self._audiences.get(audience_id)
        test = self._book.get(audience_id)
        if test is None or test.ended_ms is not None:
            raise NotFound(f"audience {audience_id} has no A/B test")
        return test

    def show(self, audience_id: int) -> AbTestView:
        """The test with each variation's members now and connections."""
        test = self.get(audience_id)
        audience = self._audiences.get(audience_id)
        counts = dict.fromkeys(test.names(), 0)
        for mpid in self._all_members(audience_id):
            counts[test.variation_of(mpid)] += 1
        connected = self._book.connections(audience_id)
        name = audience.external_name or audience.name
        shares = {v.name: v.percentage for v in test.variations}
        shares[CONTROL] = test.control_percentage
        views = [
            VariationView(
                name=variation,
                percentage=shares[variation],
                control=variation == CONTROL,
                members=counts[variation],
                audience_name=variant_audience_name(name, variation),
                connections=[c.name for c in connected if c.variation == variation],
            )
            for variation in test.names()
        ]
        full = [c.name for c in self._book.audience_connections(audience_id) if c.variation is None]
        return AbTestView(
            audience_id=audience_id,
            variations=views,
            created_ms=test.created_ms,
            updated_ms=test.updated_ms,
            full_audience_connections=full,
        )

    def delete(self, audience_id: int) -> list[str]:
        """Delete the test and its variation connections (their members' removals sent
        first); the connections ending so."""
        test = self.get(audience_id)
        return self._book.end(test, self._clock.now_ms())

    def members(self, audience_id: int, variation: str) -> list[int]:
        """The variation's members now: the audience's members assigned to it."""
        test = self.get(audience_id)
        if variation not in test.names():
            known = ", ".join(repr(n) for n in test.names())
            raise InvalidBatch(
                f"the test of audience {audience_id} has no variation {variation!r} ({known})",
                "variation",
            )
        return [m for m in self._all_members(audience_id) if test.variation_of(m) == variation]

    def variations_of(self, mpid: int) -> dict[int, str]:
        """The profile's variation in every audience with a running test (member or not),
        without reading its memberships: what the web UI's profile page shows beside them."""
        return {
            test.audience_id: test.variation_of(mpid)
            for test in self._book.current().values()
            if test.ended_ms is None
        }

    def of_profile(self, mpid: int) -> list[ProfileVariation]:
        """The profile's variation in every audience with a running test."""
        now = self._clock.now_ms()
        inside = set(self._audiences.audiences_of_at(mpid, now))
        live = {a.id for a in self._audiences.all()}
        return [
            ProfileVariation(
                audience_id=test.audience_id,
                variation=test.variation_of(mpid),
                member=test.audience_id in inside,
            )
            for test in sorted(self._book.current().values(), key=lambda t: t.audience_id)
            if test.ended_ms is None and test.audience_id in live
        ]

    def _check_connected(self, before: AbTest, test: AbTest) -> None:
        """While variations have connections, the split stays as they were sent it: the
        percentages (in order) may not change, as that would move members between
        variations without their connections being told; nor may a connected variation be
        removed or renamed."""
        connected = self._book.connections(test.audience_id)
        if not connected:
            return
        names = set(test.names())
        for c in connected:
            if c.variation not in names:
                raise InvalidBatch(
                    f"variation {c.variation!r} has the connection {c.name!r}; delete it"
                    " before removing or renaming the variation",
                    "variations",
                )
        shares = [v.percentage for v in test.variations]
        if shares != [v.percentage for v in before.variations]:
            listed = ", ".join(repr(c.name) for c in connected)
            raise InvalidBatch(
                "the split cannot change while variations have connections"
                f" ({listed}): it would move members between them unannounced;"
                " delete the connections first",
                "variations",
            )

    def _all_members(self, audience_id: int) -> Iterator[int]:
        after: int | None = None
        while True:
            page = self._members.audience_members(audience_id, after, _PAGE)
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1]
