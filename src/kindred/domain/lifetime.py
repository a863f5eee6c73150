"""Profile lifetime (RET-1, RET-2): a profile not updated within its account's lifetime
ages out. The window rolls from the profile's last update."""

from __future__ import annotations

from kindred.domain.profile import Profile
from kindred.domain.tenancy import AccountPolicy

__all__ = ["DAY_MS", "expired_before_ms", "is_expired", "lifetime_ms"]

DAY_MS = 86_400_000


def lifetime_ms(account: AccountPolicy) -> int:
    """With Lifetime Profiles on, `profile_lifetime_days` already equals the retention."""
    return account.profile_lifetime_days * DAY_MS


def expired_before_ms(account: AccountPolicy, now_ms: int) -> int:
    """Profiles of the account last stored before this instant have aged out."""
    return now_ms - lifetime_ms(account)


def is_expired(profile: Profile, account: AccountPolicy, now_ms: int) -> bool:
    return profile.last_stored_ms < expired_before_ms(account, now_ms)
