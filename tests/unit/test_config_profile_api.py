"""Settings for the Profile API: credentials, [oauth], [retention], KINDRED_CLOCK_FILE."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kindred.config import Settings, load_settings
from kindred.domain.credentials import hash_secret
from kindred.domain.errors import ConfigError

BASE = """
[org]
id = 1
[[accounts]]
id = 1
name = "A"
[[accounts.workspaces]]
id = 1
name = "W"
"""


def settings_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "kindred.toml"
    path.write_text(BASE + text)
    return load_settings(path, env=env or {})


def test_credentials_oauth_and_retention_have_defaults(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "")
    assert settings.oauth.audiences == ["https://api.mparticle.com"]
    assert settings.oauth.token_ttl_s == 28800
    assert settings.retention.sweep_interval_s == 3600
    assert settings.clock_file is None


def test_a_credential_secret_may_be_a_hash_or_come_from_the_environment(tmp_path: Path) -> None:
    hashed = hash_secret("s", b"0" * 16)
    settings = settings_of(
        tmp_path,
        f"""
[[credentials]]
client_id = "a"
client_secret_hash = "{hashed}"
workspaces = [1]
[[credentials]]
client_id = "b"
client_secret_env = "B_SECRET"
workspaces = [1]
""",
        env={"B_SECRET": "from-env", "KINDRED_CLOCK_FILE": "/tmp/offset"},
    )
    assert [c.client_secret_hash for c in settings.credentials] == [hashed, None]
    assert settings.credentials[1].client_secret == "from-env"
    assert settings.clock_file == "/tmp/offset"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('client_id = "a"\nworkspaces = [1]', "give exactly one of client_secret"),
        (
            'client_id = "a"\nclient_secret = "s"\nclient_secret_hash = "x"\nworkspaces = [1]',
            "give exactly one",
        ),
        ('client_id = "a"\nclient_secret_hash = "md5$x"\nworkspaces = [1]', "not a hash"),
        ('client_id = "a"\nclient_secret = "s"\nworkspaces = []', "at least one workspace"),
        ('client_id = "a"\nclient_secret = "s"\nworkspaces = [9]', "no workspace with id 9"),
        ('client_id = " "\nclient_secret = "s"\nworkspaces = [1]', "client_id: must not be"),
        (
            'client_id = "a"\nclient_secret = "s"\nworkspaces = [1]\nrate_limit_per_s = 0',
            "credentials[0].rate_limit_per_s",
        ),
    ],
)
def test_bad_credentials_are_refused_by_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        settings_of(tmp_path, f"[[credentials]]\n{text}\n")


def test_client_ids_are_unique(tmp_path: Path) -> None:
    one = '[[credentials]]\nclient_id = "a"\nclient_secret = "s"\nworkspaces = [1]\n'
    with pytest.raises(ConfigError, match=re.escape("credentials[].client_id: 'a' is used twice")):
        settings_of(tmp_path, one + one)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[oauth]\naudiences = []", "oauth.audiences"),
        ("[oauth]\ntoken_ttl_s = 5", "oauth.token_ttl_s"),
        (
            "[oauth.requests_per_client]\nper_minute = 0\nburst = 5",
            "oauth.requests_per_client.per_minute: must be positive",
        ),
        (
            "[oauth.requests_per_address]\nper_minute = 10\nburst = 0",
            "oauth.requests_per_address.burst: must be at least 1",
        ),
        ("[oauth.requests_per_client]\nbursts = 5", "unknown field `bursts`"),
        ("[retention]\nsweep_chunk = 0", "retention"),
        ("[retention]\nsweep_every = 5", "unknown field `sweep_every`"),
    ],
)
def test_bad_oauth_and_retention_settings_are_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_of(tmp_path, text)


def test_token_request_limits_are_read(tmp_path: Path) -> None:
    defaults = settings_of(tmp_path, "").oauth
    assert (defaults.requests_per_client.per_minute, defaults.requests_per_client.burst) == (
        60,
        20,
    )
    text = "[oauth.requests_per_address]\nper_minute = 6.5\nburst = 3\n"
    limit = settings_of(tmp_path, text).oauth.requests_per_address
    assert (limit.per_minute, limit.burst) == (6.5, 3)
