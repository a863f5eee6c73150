"""Audience versions (BEY-3) in SQL that SQLite and PostgreSQL both speak: a version is
recorded inside the transaction that saves the audience, when its definition changed."""

from __future__ import annotations

from kindred.audiences.definition import AudienceDef
from kindred.audiences.versions import AudienceVersion, is_new_version
from kindred.storage.codec import audience_doc, audience_of
from kindred.storage.outbox_sql import Cursor

__all__ = ["read_versions", "record_version"]


def record_version(cursor: Cursor, audience: AudienceDef, mark: str) -> None:
    """Append the audience's next version unless its definition is the last one's."""
    cursor.execute(
        f"SELECT version, doc FROM audience_versions WHERE audience_id = {mark}"
        " ORDER BY version DESC LIMIT 1",
        (audience.id,),
    )
    last = cursor.fetchone()
    previous = audience_of(audience.id, last[1]) if last else None
    if is_new_version(previous, audience):
        cursor.execute(
            "INSERT INTO audience_versions (audience_id, version, saved_ms, doc)"
            f" VALUES ({mark}, {mark}, {mark}, {mark})",
            (
                audience.id,
                (last[0] if last else 0) + 1,
                audience.updated_ms or audience.created_ms,
                audience_doc(audience),
            ),
        )


def read_versions(cursor: Cursor, audience_id: int, mark: str) -> list[AudienceVersion]:
    cursor.execute(
        f"SELECT version, doc FROM audience_versions WHERE audience_id = {mark} ORDER BY version",
        (audience_id,),
    )
    return [
        AudienceVersion(
            audience_id=audience_id, version=int(v), audience=audience_of(audience_id, doc)
        )
        for v, doc in cursor.fetchall()
    ]
