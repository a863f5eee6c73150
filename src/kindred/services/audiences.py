"""Real-time audiences (AUD-5): the registry of active audiences and live membership.
(Definitions and history: `services.audience_admin`; background work:
`services.audience_jobs`; compiling and evaluating, pure: `audiences.compiled` and
`audiences.membership`.)

The registry holds the active audiences, compiled once when loaded (never per event), and
re-reads the store every few seconds, so an audience activated in another process is
picked up. On each applied batch, `refresh` keeps the profile's event history for the keys
active audiences use and re-evaluates only the audiences whose fields the batch changed
(nested audiences first, so an outer one sees their new memberships).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import msgspec

from kindred.audiences.compiled import CompiledAudience, compile_audience, nested_first, nesting_of
from kindred.audiences.definition import AudienceDef, MembershipChange
from kindred.audiences.deps import touched_by
from kindred.audiences.evaluate import DAY_MS
from kindred.audiences.history import Histories, histories_of, record_events
from kindred.audiences.membership import evaluate_memberships
from kindred.domain.changes import Change
from kindred.domain.observation import EventFact
from kindred.domain.profile import Profile
from kindred.domain.tenancy import Tenancy
from kindred.ports import AudienceStore, Clock

__all__ = ["AudienceRegistry"]


class AudienceRegistry:
    def __init__(
        self, store: AudienceStore, tenancy: Tenancy, clock: Clock, *, refresh_ms: int = 2000
    ) -> None:
        self._store = store
        self._tenancy = tenancy
        self._clock = clock
        self._refresh_ms = refresh_ms
        self._active: list[CompiledAudience] = []
        self._tracked = Histories()
        self._lookback_ms = 90 * DAY_MS
        self._loaded_ms: int | None = None
        self._lock = threading.Lock()

    def active(self) -> list[CompiledAudience]:
        """Active audiences, each after the audiences it nests."""
        now = self._clock.now_ms()
        if self._loaded_ms is None or not 0 <= now - self._loaded_ms < self._refresh_ms:
            with self._lock:
                self._load(now)
        return self._active

    def invalidate(self) -> None:
        self._loaded_ms = None

    def _load(self, now: int) -> None:
        saved = self._store.list_audiences()
        nesting = nesting_of(saved)
        compiled = [self.compile(a, nesting) for a in saved if a.status == "active"]
        self._active = nested_first(compiled)
        self._tracked = histories_of(h for a in compiled for h in a.histories)
        self._lookback_ms = max((a.definition.lookback_days for a in compiled), default=90) * DAY_MS
        self._loaded_ms = now

    def compile(
        self, audience: AudienceDef, nesting: dict[int, frozenset[int]] | None = None
    ) -> CompiledAudience:
        """Parse and check the audience (against the saved audiences it may nest)."""
        if nesting is None:
            nesting = nesting_of(self._store.list_audiences())
        return compile_audience(audience, nesting, self._tenancy)

    def refresh(
        self,
        profile: Profile,
        changes: Sequence[Change],
        events: Sequence[EventFact],
        *,
        device_seen: bool,
        now_ms: int,
    ) -> tuple[Profile, list[MembershipChange]]:
        """The profile with its event history kept and its memberships re-evaluated for
        what the batch touched; the membership changes to log."""
        active = self.active()
        if not active and not profile.memberships:
            return profile, []
        history = record_events(
            profile.event_times, events, self._tracked, now_ms - self._lookback_ms
        )
        if history != profile.event_times:
            profile = msgspec.structs.replace(profile, event_times=history)
        keys = {
            k for e in events for k in (e.event_type, f"{e.event_type}:{(e.name or '').lower()}")
        }
        touched = touched_by(changes, keys, device_seen=device_seen)
        return evaluate_memberships(profile, active, touched, now_ms)
