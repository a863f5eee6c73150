"""The config file's API credentials as the domain's values (the store's own are added to
them at run time by the credential registry)."""

from __future__ import annotations

from kindred.config import CredentialSettings, Settings
from kindred.domain.credentials import ApiCredential

__all__ = ["credentials_from"]


def credentials_from(settings: Settings) -> list[ApiCredential]:
    """Every credential the settings declare."""
    return [_credential(c) for c in settings.credentials]


def _credential(c: CredentialSettings) -> ApiCredential:
    """A config-file credential; a plain secret stays as given (it is in the file anyway)."""
    return ApiCredential(
        client_id=c.client_id,
        secret_hash=c.client_secret_hash or f"plain${c.client_secret}",
        workspaces=frozenset(c.workspaces),
        rate_limit_per_s=c.rate_limit_per_s,
        rate_limit_burst=c.rate_limit_burst,
        name=c.name,
        origin="config",
        scopes=frozenset(c.scopes),
    )
