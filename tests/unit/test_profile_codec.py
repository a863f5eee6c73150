"""Stored profile documents: fields added later have defaults, so documents written before
them still decode."""

from __future__ import annotations

from kindred.domain.profile import AttributeEntry, Profile
from kindred.storage.codec import decode_profile, encode_profile, sample_of


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


def test_profiles_sharing_a_sample_key_are_both_sampled_read_again_or_not() -> None:
    """The sample key is a 31-bit hash: two profiles of a sample can share it. Both stay in
    the sample, on a first read and on a read given the previous one."""
    docs = [
        encode_profile(Profile(mpid=m, scope="a1", created_ms=1, last_stored_ms=2))
        for m in (5, 6, 7)
    ]
    rows = [(10, docs[0], None), (10, docs[1], b'{"3":{"audience_id":3,"name":"n","since_ms":1}}')]
    rows.append((12, docs[2], None))
    first = sample_of(rows, 2)
    assert [p.mpid for p in first.profiles] == [5, 6]
    assert first.bound == 12
    again = sample_of(rows, 2, first)
    assert [p.mpid for p in again.profiles] == [5, 6]
    assert again.profiles[0] is first.profiles[0]
    assert list(again.profiles[1].memberships) == [3]
    # The memberships changed, the document not: decoded again.
    changed = sample_of([rows[0], (10, docs[1], None), rows[2]], 2, again)
    assert changed.profiles[1].memberships == {}
    assert changed.profiles[0] is first.profiles[0]
