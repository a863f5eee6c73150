"""An audience definition as saved (AUD-1): the document the admin API and CLI exchange."""

from __future__ import annotations

from typing import Literal

import msgspec

from kindred.audiences.ast import Node
from kindred.audiences.operands import MAX_DAYS
from kindred.domain.errors import InvalidBatch
from kindred.domain.users import AudienceAccess

__all__ = [
    "ERASED_EXIT",
    "INT64_MIN",
    "MAX_TAG_LENGTH",
    "AudienceAccess",
    "AudienceDef",
    "AudienceKind",
    "AudienceStatus",
    "MembershipChange",
    "Selection",
    "ShadowEdit",
    "ShadowPhase",
    "ShadowPreview",
    "check_settings",
    "with_backfill",
]

AudienceStatus = Literal["draft", "active", "inactive", "deleted"]
# The reason of the exit an erasure logs for each membership of the profile it erases,
# whose earlier entries it deletes: the log's totals leave these exits out, as the entries
# they would close are gone (MembershipCounts).
ERASED_EXIT = "erased"
# real_time: evaluated as profiles change (AUD-5); standard: computed on request over the
# whole retained event log, its members replaced when the calculation is done (AUD-13).
AudienceKind = Literal["real_time", "standard"]
MAX_TAG_LENGTH = 18


class AudienceDef(msgspec.Struct, kw_only=True):
    id: int = 0  # given by the store when first saved
    name: str
    external_name: str | None = None
    workspaces: list[int]
    # Inputs whose events count; empty: every input of the workspaces.
    inputs: list[str] = msgspec.field(default_factory=list)
    criteria: dict[str, object]
    status: AudienceStatus = "draft"
    tags: list[str] = msgspec.field(default_factory=list)
    created_by: str = ""
    created_ms: int = 0
    updated_ms: int = 0
    # Who saved the audience last (a user, "admin token", "cli"), for its history.
    updated_by: str = ""
    # Who besides its owner (`created_by`) and admins may see and use it
    # (domain.users): private, view (see only) or usable (see, nest, connect, download).
    access: AudienceAccess = "usable"
    # Events older than this many days never count (the audience lookback window).
    lookback_days: int = 90
    # Backfill (kept by Kindred): the identity scope and the next MPID to evaluate there,
    # None when none is running;
    # how many profiles it has evaluated; when it last finished.
    backfill_scope: str | None = None
    backfill_from: int | None = None
    backfill_done: int = 0
    backfill_finished_ms: int | None = None
    # Its histories computed from the event log (kept by Kindred): the newest log id when
    # it was activated or edited (the batches up to it are the activation's to fold; every
    # later one is recorded by a writer that knows it), and the log id the fold has reached,
    # None when it is not running. The backfill of memberships follows it.
    history_to: int = 0
    history_from: int | None = None
    kind: AudienceKind = "real_time"
    # A standard audience: how many days a calculation stays fresh (None: the setting
    # audiences.standard_expiry_days); kept by Kindred: when its members were last computed
    # and when that result expires (still used, marked expired), a calculation asked for
    # and not done yet (when it was asked; its log cut is `history_to`), and the process
    # running it with the end of its lease.
    expiry_days: int | None = None
    computed_ms: int | None = None
    expires_ms: int | None = None
    calc_requested_ms: int | None = None
    calc_owner: str | None = None
    calc_lease_ms: int = 0
    # Kept by Kindred: the instant the histories of the criteria are tagged with (None:
    # `updated_ms`); a promoted shadow edit keeps the tag its histories were computed under.
    history_tag_ms: int | None = None
    # A proposed definition computed in shadow while this one serves (BEY-4), if any.
    shadow: ShadowEdit | None = None


# folding: its histories computed from the event log; computing: every profile decided
# (the first time); ready: a preview exists (refreshed while it waits); promoting: the new
# definition is the audience's, its memberships being changed.
ShadowPhase = Literal["folding", "computing", "ready", "promoting"]


class ShadowPreview(msgspec.Struct, kw_only=True):
    """What promoting the shadow would change, as decided at `as_of_ms`: how many profiles
    would enter and leave, and the first of each (by MPID)."""

    as_of_ms: int
    evaluated: int = 0
    entering: int = 0
    leaving: int = 0
    entering_sample: list[int] = msgspec.field(default_factory=list)
    leaving_sample: list[int] = msgspec.field(default_factory=list)


class ShadowEdit(msgspec.Struct, kw_only=True):
    """An edit of an active audience computed in shadow (BEY-4): the proposed definition
    (its `history_tag_ms` the tag of its own histories, `history_to` the event log cut
    they are folded up to, `history_from` how far the fold is), the live definition it
    was started against (`base_updated_ms`: any other change of the audience voids it),
    the decision pass under way (`scan`) and the last complete one (`preview`)."""

    definition: AudienceDef
    base_updated_ms: int
    started_ms: int
    started_by: str = ""
    phase: ShadowPhase = "folding"
    scan: ShadowPreview | None = None
    scan_scope: str | None = None
    scan_from: int = 0
    # What the pass began against: the newest event log id, then the membership totals
    # (entered, exited) of the audience and of those either definition nests. Any of them
    # moved since, the preview is computed again.
    scan_marks: list[int] = msgspec.field(default_factory=list)
    preview: ShadowPreview | None = None


class MembershipChange(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the append-only membership log (AUD-12): who entered or left which
    audience, when, and why (the fields that changed, or "time")."""

    audience_id: int
    mpid: int
    entered: bool
    at_ms: int
    reason: str
    id: int | None = None


class Selection(msgspec.Struct, frozen=True, kw_only=True):
    """Which profiles of an identity scope an audience's criteria admit at an instant,
    reading its workspaces: what a store answers with compiled SQL (audiences.sql)."""

    criteria: Node
    scope: str
    workspace_ids: frozenset[int]
    now_ms: int


INT64_MIN = -(2**63)


def with_backfill(audience: AudienceDef) -> AudienceDef:
    """The audience with a backfill (re)started: its histories from the start of the event
    log (up to `history_to`, which the store sets when it saves it), then its memberships
    from its first scope's first profile."""
    return msgspec.structs.replace(
        audience,
        history_from=0,
        backfill_scope="",  # sorts before every scope name: the run starts with the first
        backfill_from=INT64_MIN,
        backfill_done=0,
        backfill_finished_ms=None,
        history_tag_ms=None,
        shadow=None,  # histories start over: a shadow computed against them is void
    )


def check_settings(audience: AudienceDef) -> None:
    """The checks of a definition's settings beside its name and criteria (workspaces,
    tags, lookback, expiry) that a save and an estimate both make: InvalidBatch naming
    the first that fails."""
    if not audience.workspaces:
        raise InvalidBatch("name at least one workspace", "workspaces")
    for tag in audience.tags:
        if len(tag) > MAX_TAG_LENGTH:
            raise InvalidBatch(f"tag {tag!r} is over {MAX_TAG_LENGTH} characters", "tags")
    if not 1 <= audience.lookback_days <= MAX_DAYS:
        raise InvalidBatch(f"lookback_days is from 1 to {MAX_DAYS}", "lookback_days")
    if audience.expiry_days is not None and not 1 <= audience.expiry_days <= MAX_DAYS:
        raise InvalidBatch(f"expiry_days is from 1 to {MAX_DAYS}", "expiry_days")
