"""How profiles are serialized by every store: JSON, so SQL can read into them."""

from __future__ import annotations

import msgspec

from kindred.domain.profile import Profile

__all__ = ["decode_profile", "encode_profile"]

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Profile)


def encode_profile(profile: Profile) -> bytes:
    return _ENCODER.encode(profile)


def decode_profile(doc: bytes | str) -> Profile:
    return _DECODER.decode(doc)
