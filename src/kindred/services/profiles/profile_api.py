"""Profile API reads (API-2, API-3): one workspace's view of a profile, in the public shape.

Checks run in the order a caller can act on: the workspace must be covered by the
credential (403) and exist under the org and account named (404); the profile must exist
in the workspace's identity scope and be within its account's lifetime (404).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Protocol

from kindred.domain.calculated_entries import refreshed
from kindred.domain.credentials import PROFILES_SCOPE, ApiCredential
from kindred.domain.errors import AuthRejected, InvalidBatch, NotFound
from kindred.domain.expiry import without_expired
from kindred.domain.identities import IdentityKey, canonical_identity_type
from kindred.domain.lifetime import is_expired
from kindred.domain.observation import AttrValue
from kindred.domain.profile import AttributeEntry, Device, Profile, WorkspaceProfile
from kindred.domain.tenancy import Tenancy, WorkspaceDef
from kindred.ports import Clock, DefinitionsVersion, ProfileReader
from kindred.services.merges import follow_merged
from kindred.wire.profile_api import (
    AttributionItem,
    AudienceMembership,
    IdentityItem,
    ProfileResponse,
    ResolveRequest,
)

__all__ = ["ProfileApiService", "project_profile"]

# Events API device identity names -> the names the Profile API uses.
_DEVICE_TYPE_NAMES = {
    "ios_advertising_id": "ios_advertising_id",
    "ios_idfv": "ios_vendor_id",
    "android_advertising_id": "google_advertising_id",
    "android_uuid": "android_id",
    "roku_advertising_id": "roku_advertising_id",
    "roku_publisher_id": "roku_publisher_id",
    "fire_advertising_id": "fire_advertising_id",
    "microsoft_advertising_id": "microsoft_advertising_id",
    "microsoft_publisher_id": "microsoft_publisher_id",
}
_APPLE = ("ios", "tvos", "watchos", "macos")


class _Store(ProfileReader, DefinitionsVersion, Protocol):
    """The profiles, and the definitions' version a request reads once."""


def _refreshed(profile: Profile, now_ms: int, _version: int | None) -> Profile:
    return refreshed(profile, now_ms)


class ProfileApiService:
    def __init__(
        self,
        store: _Store,
        tenancy: Tenancy,
        clock: Clock,
        current: Callable[[Profile, int, int | None], Profile] = _refreshed,
    ) -> None:
        """`current`: the profile as a read sees it at an instant under the definitions
        at a version (its calculated values as time has left them, those of deleted
        definitions gone; a profile without calculated states as it is); attribute values
        past their time to live are left out too."""
        self._store = store
        self._tenancy = tenancy
        self._clock = clock
        ttls = tenancy.attribute_ttls

        def calculated(profile: Profile, now_ms: int, version: int | None) -> Profile:
            # Most profiles hold no calculated state: nothing to work out for them.
            for workspace in profile.workspaces.values():
                if workspace.calculated:
                    return current(profile, now_ms, version)
            return profile

        def visible(profile: Profile, now_ms: int, version: int | None) -> Profile:
            # Values past their time to live (RET-4) are gone at their expiry instant,
            # whether or not the expiry sweep has removed them yet.
            return without_expired(calculated(profile, now_ms, version), ttls, now_ms)[0]

        self._current = visible if ttls else calculated

    def definitions_version(self) -> int:
        """The definitions as last committed: a request reads it once and uses it for its
        credential and the profile's calculated values."""
        return self._store.definitions_version()

    def versioned_profile(self, mpid: int) -> tuple[int, Profile | None]:
        """The definitions as last committed and the stored profile, in one read: for a
        caller whose access was checked already (`check_access`), then again at that
        version by `read`."""
        return self._store.versioned_profile(mpid)

    def check_access(self, credential: ApiCredential, path: tuple[int, int, int]) -> WorkspaceDef:
        """The workspace at `path` (org, account, workspace); AuthRejected or NotFound
        unless the credential may read it, as `by_mpid` checks first."""
        return self._workspace(credential, *path)

    def by_mpid(
        self,
        credential: ApiCredential,
        path: tuple[int, int, int],
        mpid: int,
        fields: Collection[str],
        version: int | None = None,
    ) -> ProfileResponse:
        workspace = self._workspace(credential, *path)
        return self._answer(workspace, mpid, self._store.get_profile(mpid), fields, version)

    def read(
        self,
        workspace: WorkspaceDef,
        stored: tuple[int, Profile | None],
        fields: Collection[str],
        version: int | None = None,
    ) -> ProfileResponse:
        """`by_mpid` for a profile read already (`stored`: its MPID and what was read), in
        a workspace `check_access` gave for the caller's credential at `version`."""
        return self._answer(workspace, stored[0], stored[1], fields, version)

    def _answer(
        self,
        workspace: WorkspaceDef,
        mpid: int,
        stored: Profile | None,
        fields: Collection[str],
        version: int | None,
    ) -> ProfileResponse:
        profile = stored
        if stored is not None and stored.merged_into is not None:
            profile = follow_merged(self._store.get_profile, stored)
        now = self._clock.now_ms()
        if profile is None or profile.scope != workspace.identity_scope:
            raise NotFound(f"no profile with MPID {mpid}")
        if is_expired(profile, workspace.account, now):
            raise NotFound(f"profile {mpid} has expired")
        return project_profile(self._current(profile, now, version), workspace.workspace_id, fields)

    def resolve(
        self,
        credential: ApiCredential,
        path: tuple[int, int, int],
        request: ResolveRequest,
        fields: Collection[str],
        version: int | None = None,
    ) -> ProfileResponse:
        workspace = self._workspace(credential, *path)
        immutable = workspace.account.identity.immutable
        asked = canonical_identity_type(request.identity.type)
        if immutable is None:
            raise InvalidBatch("the account has no immutable identity to resolve by", "identity")
        if asked != immutable:
            raise InvalidBatch(
                f"{request.identity.type!r} is not the account's immutable identity ({immutable})",
                "identity.type",
            )
        now = self._clock.now_ms()
        key = IdentityKey(immutable, request.identity.value.strip())
        live = [
            p
            for p in self._profiles(self._store.find_profiles(workspace.identity_scope, key))
            if not is_expired(p, workspace.account, now)
        ]
        if not live:
            raise NotFound(f"no profile with {immutable} {request.identity.value!r}")
        best = max(live, key=lambda p: (p.last_stored_ms, p.mpid))
        return project_profile(self._current(best, now, version), workspace.workspace_id, fields)

    def _profiles(self, mpids: Iterable[int]) -> list[Profile]:
        return [p for p in (self._store.get_profile(m) for m in mpids) if p is not None]

    def _workspace(
        self, credential: ApiCredential, org_id: int, account_id: int, workspace_id: int
    ) -> WorkspaceDef:
        if PROFILES_SCOPE not in credential.scopes:
            raise AuthRejected(
                f"credential {credential.client_id} lacks the {PROFILES_SCOPE!r} scope"
            )
        if not credential.covers(workspace_id):
            raise AuthRejected(
                f"credential {credential.client_id} has no access to workspace {workspace_id}"
            )
        workspace = self._tenancy.workspaces.get(workspace_id)
        if (
            workspace is None
            or workspace.account.account_id != account_id
            or self._tenancy.org_id != org_id
        ):
            raise NotFound(f"no workspace {workspace_id} in account {account_id} of org {org_id}")
        return workspace


def project_profile(
    profile: Profile, workspace_id: int, fields: Collection[str]
) -> ProfileResponse:
    """The workspace's view of the profile with only the fields asked for."""
    ws = profile.workspaces.get(workspace_id)
    response = ProfileResponse(
        mpid=profile.mpid,
        created_timestamp_ms=profile.created_ms,
        last_stored_timestamp_ms=profile.last_stored_ms,
        is_opted_out=profile.is_opted_out,
        limit_ad_tracking=profile.limit_ad_tracking,
    )
    if "device_identities" in fields:
        response.device_identities = _device_identities(ws)
    if "user_identities" in fields:
        response.user_identities = [
            IdentityItem(type=id_type, value=entry.value)
            for id_type, entry in sorted(profile.user_identities.items())
        ]
    if "user_attributes" in fields:
        # Account-level attributes (PRF-4); null when the profile has none, as the public
        # API answers for accounts without them.
        response.account_user_attributes = _live_texts(profile.account_attributes) or None
        response.user_attributes = {} if ws is None else _live_texts(ws.attributes)
    if "audience_memberships" in fields:
        response.audience_memberships = _memberships(profile)
    if "attribution" in fields:
        response.attribution = _attribution(ws)
    return response


def _device_identities(ws: WorkspaceProfile | None) -> list[IdentityItem]:
    if ws is None or not ws.devices:
        return []
    devices: Collection[Device] = ws.devices.values()
    if len(devices) > 1:
        devices = sorted(devices, key=lambda d: (-d.last_seen_ms, d.key))
    seen: dict[tuple[str, str], None] = {}
    for device in devices:
        identities = device.identities.items()
        for id_type, value in sorted(identities) if len(identities) > 1 else identities:
            seen.setdefault((_device_type_name(id_type, device.platform), value), None)
    return [IdentityItem(type=t, value=v) for t, v in seen]


def _device_type_name(id_type: str, platform: str | None) -> str:
    if id_type == "push_token":
        apple = (platform or "").lower() in _APPLE
        return "apple_push_notification_token" if apple else "google_cloud_messaging_token"
    return _DEVICE_TYPE_NAMES.get(id_type, "unknown")


def _live_texts(entries: dict[str, AttributeEntry]) -> dict[str, str | list[str] | None]:
    """The values without tombstones, as the Profile API gives them. Reserved attributes
    are stored as the Events API names them ($FirstName) and read back as the Profile API
    does ($firstname)."""
    texts: dict[str, str | list[str] | None] = {}
    for key, entry in entries.items():
        if entry.deleted:
            continue
        value = entry.value
        texts[key.lower() if key[:1] == "$" else key] = (
            value if value is None or type(value) is str else _attribute_text(value)
        )
    return texts


def _attribute_text(value: AttrValue) -> str | list[str] | None:
    """The Profile API gives every value as a string or a list of strings."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value)


def _memberships(profile: Profile) -> list[AudienceMembership]:
    return [
        AudienceMembership(m.audience_id, m.name, m.expires_ms)
        for _, m in sorted(profile.memberships.items())
    ]


def _attribution(ws: WorkspaceProfile | None) -> list[AttributionItem]:
    if ws is None:
        return []
    found = [
        AttributionItem(d.attribution.publisher, d.attribution.campaign, d.attribution.ts_ms)
        for d in ws.devices.values()
        if d.attribution is not None and not d.attribution.deleted
    ]
    return sorted(found, key=lambda a: -a.timestamp_ms)
