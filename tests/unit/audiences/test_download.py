"""The pure part of an audience download (AUD-9): a member's rows, names, the manifest."""

from __future__ import annotations

from kindred.audiences.download import (
    DownloadPart,
    FileCounts,
    archive_name,
    file_name,
    iso_utc,
    manifest,
    member_rows,
)
from kindred.domain.profile import Device, IdentityEntry, Profile, WorkspaceProfile

__all__: list[str] = []


def _workspace(*devices: dict[str, str]) -> WorkspaceProfile:
    return WorkspaceProfile(
        first_seen_ms=1,
        last_seen_ms=1,
        devices={
            f"d{n}": Device(key=f"d{n}", first_seen_ms=1, last_seen_ms=1, identities=ids)
            for n, ids in enumerate(devices)
        },
    )


PROFILE = Profile(
    mpid=7,
    scope="s",
    created_ms=1,
    last_stored_ms=1,
    user_identities={
        "email": IdentityEntry(value="a@example.com", first_seen_ms=1, last_seen_ms=1),
        "customer_id": IdentityEntry(value="c1", first_seen_ms=1, last_seen_ms=1),
    },
    workspaces={
        1: _workspace({"ios_idfv": "v2"}, {"ios_idfv": "v1", "android_uuid": "u1"}),
        2: _workspace({"ios_idfv": "v3"}, {"ios_idfv": "v1"}),
    },
)


def test_rows_follow_the_types_asked_for_user_identity_then_devices_of_the_workspaces() -> None:
    assert member_rows(PROFILE, (1,), ["ios_idfv", "email"]) == [
        ("ios_idfv", "v1"),
        ("ios_idfv", "v2"),
        ("email", "a@example.com"),
    ]
    # a device of a workspace the audience does not read is not its
    assert member_rows(PROFILE, (2,), ["ios_idfv"]) == [("ios_idfv", "v1"), ("ios_idfv", "v3")]
    assert member_rows(PROFILE, (1, 2), ["ios_idfv"]) == [
        ("ios_idfv", "v1"),
        ("ios_idfv", "v2"),
        ("ios_idfv", "v3"),
    ]
    assert member_rows(PROFILE, (1,), ["mobile_number"]) == []


def test_names_as_the_product_writes_them() -> None:
    at = 1_543_512_096_000  # 2018-11-29T17:21:36Z
    part = DownloadPart(audience_id=8754, name="Potential parisians!", workspaces=(1,))
    assert file_name(part, at) == "8754_PotentialParisians_172136Nov292018.csv"
    variant = DownloadPart(audience_id=1, name="x", workspaces=(1,), variant="control b")
    assert file_name(variant, at) == "1_X_ControlB_172136Nov292018.csv"
    assert archive_name("9dd9b6dc-f0ec", 1_546_463_143_000) == (
        "KindredAudiences_210543Jan022019_9dd9.zip"
    )
    assert iso_utc(1_546_463_180_021) == "2019-01-02T21:06:20.021Z"
    assert iso_utc(951_782_400_000) == "2000-02-29T00:00:00.000Z"


def test_the_manifest_sums_its_files() -> None:
    part = DownloadPart(audience_id=3, name="A", workspaces=(1,))
    first = FileCounts("3_A.csv", part, ["customer_id", "email"])
    first.add([("customer_id", "c1"), ("email", "e")], 10)
    first.add([("customer_id", "c2")], 12)
    first.add([], 99)  # a member with no identity of the types: no row, not a user
    second = FileCounts(
        "4_B.csv", DownloadPart(audience_id=4, name="B", workspaces=(1,)), ["customer_id", "email"]
    )
    doc = manifest(
        download_id="id",
        archive="a.zip",
        audience_ids=[3, 4],
        identity_types=["customer_id", "email"],
        generated_ms=0,
        sample=None,
        files=[first, second],
    )
    assert doc["total_rows"] == 3
    assert doc["rows_by_identity"] == {"customer_id": 2, "email": 1}
    assert (doc["min_timestamp_ms"], doc["max_timestamp_ms"]) == (10, 12)
    assert doc["files"][0] == {
        "file_name": "3_A.csv",
        "audience_id": 3,
        "min_timestamp_ms": 10,
        "max_timestamp_ms": 12,
        "total_users": 2,
        "total_rows": 3,
        "rows_by_identity": {"customer_id": 2, "email": 1},
    }
    assert doc["files"][1]["total_users"] == 0
    assert doc["files"][1]["min_timestamp_ms"] is None
