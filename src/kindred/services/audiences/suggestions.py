"""The audience builder's value suggestions (UI-1): the attribute keys, account attribute
keys, identity types, event names and calculated attributes a workspace has actually
seen, drawn from the estimator's stable sample of profiles and their logged batches (the
same read estimates make, kept as long), never from a scan of the store: the answer's cost
is the sample's, whatever the number of profiles."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from threading import Lock

import msgspec

from kindred.attributes.definition import CalculatedDef
from kindred.domain.profile import Profile
from kindred.domain.tenancy import Tenancy
from kindred.ports import BatchStatus, LogEntry
from kindred.services.audiences.estimates import SAMPLE_KEPT_S, AudienceEstimator

__all__ = ["BuilderSuggestions", "Suggestions"]

# At most this many values of each kind, the most often seen first.
MAX_VALUES = 200


class Suggestions(msgspec.Struct, kw_only=True):
    workspaces: list[int]
    attribute_keys: list[str]
    account_attribute_keys: list[str]
    identity_types: list[str]
    event_names: list[str]
    screen_names: list[str]
    calculated_attributes: list[str]
    sampled_profiles: int


class _EventData(msgspec.Struct):
    event_name: str | None = None
    screen_name: str | None = None


class _Event(msgspec.Struct):
    event_type: str = ""
    data: _EventData | None = None


class _Batch(msgspec.Struct):
    events: list[_Event] | None = None


_BATCH = msgspec.json.Decoder(_Batch)


class BuilderSuggestions:
    def __init__(
        self,
        estimator: AudienceEstimator,
        tenancy: Tenancy,
        calculated: Callable[[], Sequence[CalculatedDef]],
        *,
        kept_s: float = SAMPLE_KEPT_S,
    ) -> None:
        self._estimator = estimator
        self._tenancy = tenancy
        self._calculated = calculated
        self._kept_s = kept_s
        self._kept: dict[tuple[int, ...], tuple[float, Suggestions]] = {}
        self._lock = Lock()

    def of(self, workspaces: Iterable[int]) -> Suggestions:
        """What the workspaces (known ones; every workspace when none is named) have seen."""
        known = self._tenancy.workspaces
        chosen = tuple(sorted({w for w in workspaces if w in known} or set(known)))
        now = time.monotonic()
        with self._lock:
            kept = self._kept.get(chosen)
        if kept is not None and now - kept[0] < self._kept_s:
            return kept[1]
        found = self._gather(chosen)
        with self._lock:
            self._kept[chosen] = (now, found)
        return found

    def _gather(self, chosen: tuple[int, ...]) -> Suggestions:
        scopes = sorted({self._tenancy.workspaces[w].identity_scope for w in chosen})
        attributes: dict[str, int] = {}
        account: dict[str, int] = {}
        identities: dict[str, int] = {}
        events: dict[str, int] = {}
        screens: dict[str, int] = {}
        profiles = 0
        for scope in scopes:
            live, log = self._estimator.sampled(scope)
            profiles += len(live)
            for profile in live:
                _profile_keys(profile, chosen, attributes, account, identities)
            _event_names(log, chosen, events, screens)
        calculated = sorted(
            {c.name for c in self._calculated() if c.workspace_id in chosen}, key=str.lower
        )
        return Suggestions(
            workspaces=list(chosen),
            attribute_keys=_most_seen(attributes),
            account_attribute_keys=_most_seen(account),
            identity_types=_most_seen(identities),
            event_names=_most_seen(events),
            screen_names=_most_seen(screens),
            calculated_attributes=calculated,
            sampled_profiles=profiles,
        )


def _profile_keys(
    profile: Profile,
    chosen: tuple[int, ...],
    attributes: dict[str, int],
    account: dict[str, int],
    identities: dict[str, int],
) -> None:
    seen_here = False
    for workspace_id in chosen:
        held = profile.workspaces.get(workspace_id)
        if held is None:
            continue
        seen_here = True
        for key, entry in held.attributes.items():
            if not entry.deleted:
                attributes[key] = attributes.get(key, 0) + 1
        for device in held.devices.values():
            for id_type in device.identities:
                identities[id_type] = identities.get(id_type, 0) + 1
    if not seen_here:
        return
    for key, entry in profile.account_attributes.items():
        if not entry.deleted:
            account[key] = account.get(key, 0) + 1
    for id_type in profile.user_identities:
        identities[id_type] = identities.get(id_type, 0) + 1


def _event_names(
    log: Sequence[LogEntry],
    chosen: tuple[int, ...],
    events: dict[str, int],
    screens: dict[str, int],
) -> None:
    for entry in log:
        if entry.status != BatchStatus.APPLIED or entry.workspace_id not in chosen:
            continue
        try:
            batch = _BATCH.decode(entry.body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue  # a body the decoder here does not follow: it suggests nothing
        for event in batch.events or ():
            if event.data is None:
                continue
            if event.event_type == "custom_event" and event.data.event_name:
                name = event.data.event_name
                events[name] = events.get(name, 0) + 1
            elif event.event_type == "screen_view" and event.data.screen_name:
                name = event.data.screen_name
                screens[name] = screens.get(name, 0) + 1


def _most_seen(counts: dict[str, int]) -> list[str]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [key for key, _ in ranked[:MAX_VALUES]]
