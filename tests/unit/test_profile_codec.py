"""Stored profile documents: fields added later have defaults, so documents written before
them still decode."""

from __future__ import annotations

from kindred.domain.profile import AttributeEntry, Profile
from kindred.storage.codec import decode_profile, encode_profile


def test_a_document_from_before_account_attributes_decodes_without_them() -> None:
    old = b'{"mpid":5,"scope":"a1","created_ms":1,"last_stored_ms":2,"workspaces":{}}'
    assert decode_profile(old).account_attributes == {}


def test_account_attributes_are_kept_and_absent_when_none() -> None:
    bare = Profile(mpid=5, scope="a1", created_ms=1, last_stored_ms=2)
    assert b"account_attributes" not in encode_profile(bare)
    plan = AttributeEntry(value="pro", priority=50, source="crm", ts_ms=3)
    held = Profile(
        mpid=5, scope="a1", created_ms=1, last_stored_ms=2, account_attributes={"plan": plan}
    )
    assert decode_profile(encode_profile(held)) == held
