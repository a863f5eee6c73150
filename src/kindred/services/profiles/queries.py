"""Profile reads: by MPID or by identity, for the CLI, the UI and the Profile API."""

from __future__ import annotations

from typing import Any

import msgspec

from kindred.domain.errors import InvalidBatch, NotFound
from kindred.domain.expiry import without_expired
from kindred.domain.identities import IdentityKey, canonical_identity_type
from kindred.domain.profile import Profile
from kindred.domain.tenancy import Tenancy
from kindred.ports import Clock, ProfileReader

__all__ = ["ProfileQueries", "profile_document"]


class ProfileQueries:
    def __init__(self, store: ProfileReader, tenancy: Tenancy, clock: Clock | None = None) -> None:
        """`clock`: the instant attribute values past their time to live (RET-4) are left
        out at (none: profiles as stored)."""
        self._store = store
        self._tenancy = tenancy
        self._clock = clock

    def by_mpid(self, mpid: int) -> Profile:
        profile = self._store.get_profile(mpid)
        if profile is None:
            raise NotFound(f"no profile with MPID {mpid}")
        return self._visible(profile)

    def _visible(self, profile: Profile) -> Profile:
        ttls = self._tenancy.attribute_ttls
        if self._clock is None or not ttls:
            return profile
        return without_expired(profile, ttls, self._clock.now_ms())[0]

    def by_identity(self, id_type: str, value: str, workspace_id: int | None = None) -> Profile:
        """The most recently stored profile holding the identity in the workspace's scope."""
        canonical = canonical_identity_type(id_type)
        if canonical is None:
            raise InvalidBatch(f"unknown identity type {id_type!r}", "identity")
        scope = self._scope(workspace_id)
        mpids = self._store.find_profiles(scope, IdentityKey(canonical, value.strip()))
        profiles = [p for p in (self._store.get_profile(m) for m in mpids) if p is not None]
        if not profiles:
            raise NotFound(f"no profile with {canonical} {value!r}")
        return self._visible(max(profiles, key=lambda p: (p.last_stored_ms, p.mpid)))

    def count(self) -> int:
        """How many profiles are stored (merged stubs included): `kindred rebuild` refuses
        a target that already holds any."""
        return self._store.count_profiles()

    def _scope(self, workspace_id: int | None) -> str:
        workspaces = self._tenancy.workspaces
        if workspace_id is None:
            return next(iter(workspaces.values())).identity_scope
        if workspace_id not in workspaces:
            raise NotFound(f"no workspace {workspace_id}")
        return workspaces[workspace_id].identity_scope


def profile_document(profile: Profile) -> dict[str, Any]:
    """The stored profile as plain JSON-ready data; the MPID as a string so that no JSON
    reader rounds it."""
    doc: dict[str, Any] = msgspec.to_builtins(profile)
    doc["mpid"] = str(profile.mpid)
    if profile.merged_into is not None:
        doc["merged_into"] = str(profile.merged_into)
    return doc
