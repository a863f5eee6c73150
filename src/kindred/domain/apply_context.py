"""What applying a batch works with: who writes where (ApplyContext), what it produced
(ApplyResult), and the recorder of changes and refusals it fills in (Draft)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kindred.domain.changes import Change, Note
from kindred.domain.observation import EventFact
from kindred.domain.profile import Profile
from kindred.domain.tenancy import Guardrails

__all__ = ["ApplyContext", "ApplyResult", "Draft"]


@dataclass(frozen=True, slots=True)
class ApplyContext:
    """Who writes, into which profile slot, under which limits."""

    mpid: int
    scope: str
    workspace_id: int
    source: str
    priority: int
    may_set_consent: bool
    guardrails: Guardrails
    immutable_type: str | None
    # The batch's user attributes are the account's (PRF-4), written at `priority` (the
    # account rank), not the workspace's.
    account_attributes: bool = False
    # The identities resolution accepted for this profile (junk and conflicts removed).
    user_identities: dict[str, str] = field(default_factory=dict)
    device_identities: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    profile: Profile
    changes: tuple[Change, ...]
    notes: tuple[Note, ...]
    # The batch's events minus those the profile had already seen (ING-4).
    events: tuple[EventFact, ...] = ()


@dataclass(slots=True)
class Draft:
    """Collects changes and notes while the new profile is assembled, and how many more
    identities the profile may take (PRF-6) given those it already holds."""

    identity_room: int
    held_device_ids: dict[str, set[str]]
    changes: list[Change] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def note(self, reason: str, path: str, detail: str) -> None:
        self.notes.append(Note(reason=reason, path=path, detail=detail))
