"""What applying a batch changed, and what it refused to change."""

from __future__ import annotations

import msgspec

__all__ = ["Change", "Note"]


class Change(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One observable change to a profile: audiences, outputs and history read these.

    kind is one of: profile_created, workspace_added (first seen in a workspace),
    identity_added, identity_changed, attribute_set, attribute_deleted, attribute_expired
    (its time to live ran out, RET-4),
    account_attribute_set, account_attribute_deleted (no workspace), consent_changed,
    device_added, opt_out_changed, attribution_changed, location_changed.
    """

    kind: str
    key: str = ""
    workspace_id: int | None = None
    old: object = None
    new: object = None


class Note(msgspec.Struct, frozen=True, kw_only=True):
    """Data in a batch that was refused, with a reason that metrics count by name."""

    reason: str
    path: str
    detail: str
