"""An audience's A/B test (AUD-8): up to five variations and a control, and which of them
each member is in.

Assignment is a pure function of (audience id, test salt, MPID): the first 8 bytes of a
SHA-256 of the three, read as a point in [0, 100). The variations take consecutive ranges of
that line in their order, each as wide as its percentage, and the control takes the rest
(from the variations' total up to 100). Nothing of it is stored per member, and nothing of
the audience's criteria enters it, so a member keeps its variation when the definition
changes and when the process restarts; a variation added at the end takes its members from
the control only.
"""

from __future__ import annotations

import hashlib

import msgspec

from kindred.domain.errors import InvalidBatch

__all__ = [
    "CONTROL",
    "MAX_VARIATIONS",
    "AbTest",
    "AbTestRequest",
    "Variation",
    "assign_point",
    "checked_variations",
    "sends_member",
    "variant_audience_name",
]

CONTROL = "Control"
MAX_VARIATIONS = 5
MAX_NAME_LENGTH = 100
# 2**64: the hash's 8 bytes as a fraction of the line.
_SPAN = float(1 << 64)


class Variation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A variation: its name and the whole percentage of the audience it takes."""

    name: str
    percentage: int


class AbTestRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`PUT /admin/v1/audiences/{id}/test`: the variations (the control is implied)."""

    variations: list[Variation]


class AbTest(msgspec.Struct, frozen=True, kw_only=True):
    """An audience's test as stored: the salt is made once, when the test is created, and
    kept by every later edit of its variations. `ended_ms`: the test was deleted and its
    variation connections are still sending their members' removals (kept until then);
    `farewell_after`: each of those connections' sync generation when it ended (its
    farewell is the sync begun after that one)."""

    audience_id: int
    salt: str
    variations: list[Variation]
    created_ms: int
    updated_ms: int
    ended_ms: int | None = None
    farewell_after: dict[str, int] = msgspec.field(default_factory=dict)

    @property
    def control_percentage(self) -> int:
        return 100 - sum(v.percentage for v in self.variations)

    def names(self) -> list[str]:
        """Every variation's name, the control's last."""
        return [*(v.name for v in self.variations), CONTROL]

    def variation_of(self, mpid: int) -> str:
        """The variation (or `CONTROL`) the profile is in, whether or not it is a member."""
        point = assign_point(self.audience_id, self.salt, mpid)
        edge = 0
        for variation in self.variations:
            edge += variation.percentage
            if point < edge:
                return variation.name
        return CONTROL


def assign_point(audience_id: int, salt: str, mpid: int) -> float:
    """The profile's point in [0, 100) for the audience's test: the same on every process,
    at every start (no randomness of the process's own, unlike Python's `hash`)."""
    digest = hashlib.sha256(f"{audience_id}:{salt}:{mpid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SPAN * 100.0


def checked_variations(variations: list[Variation]) -> list[Variation]:
    """The variations as given, refused (`InvalidBatch` naming the one at fault) when
    there are more than five, a name is empty, repeated or the control's, a percentage is
    not 1..100, or the variations together take more than 100 percent."""
    if len(variations) > MAX_VARIATIONS:
        raise InvalidBatch(
            f"at most {MAX_VARIATIONS} variations besides the control, not {len(variations)}",
            "variations",
        )
    seen: set[str] = set()
    total = 0
    for index, variation in enumerate(variations):
        where = f"variations[{index}]"
        name = variation.name.strip()
        if not name or len(name) > MAX_NAME_LENGTH or name != variation.name:
            raise InvalidBatch(
                f"a variation's name is 1..{MAX_NAME_LENGTH} characters without surrounding spaces",
                f"{where}.name",
            )
        if name.casefold() == CONTROL.casefold():
            raise InvalidBatch(f"{CONTROL!r} is the control's name", f"{where}.name")
        if name.casefold() in seen:
            raise InvalidBatch(f"variation name {name!r} is used twice", f"{where}.name")
        seen.add(name.casefold())
        if not 1 <= variation.percentage <= 100:
            raise InvalidBatch(
                f"variation {name!r}: percentage must be 1..100, not {variation.percentage}",
                f"{where}.percentage",
            )
        total += variation.percentage
        if total > 100:
            raise InvalidBatch(
                f"variation {name!r} takes the variations' total to {total}%: over 100%,"
                " leaving nothing for the control",
                f"{where}.percentage",
            )
    return list(variations)


def variant_audience_name(audience_name: str, variation: str) -> str:
    """The audience name a variation's connections send (`[External Name] - [Variant]`)."""
    return f"{audience_name} - {variation}"


def sends_member(test: AbTest | None, variation: str | None, mpid: int) -> bool:
    """Whether a connection of `variation` (None: the full audience) sends the member."""
    if variation is None:
        return True
    return test is not None and test.variation_of(mpid) == variation
