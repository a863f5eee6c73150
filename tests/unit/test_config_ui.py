"""Settings of the web UI: [ui] and [[ui.users]], and `kindred ui hash-password`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kindred.cli.main import main
from kindred.config import load_settings
from kindred.domain.credentials import verify_secret
from kindred.domain.errors import ConfigError
from tests.unit.test_config_profile_api import settings_of

HASH = "scrypt$16384$8$1$c2FsdA$aGFzaA"


def test_ui_users_are_read(tmp_path: Path) -> None:
    settings = settings_of(
        tmp_path,
        f'[ui]\nsession_ttl_s = 120\n[[ui.users]]\nname = "ann"\npassword_hash = "{HASH}"\n',
    )
    assert [u.name for u in settings.ui.users] == ["ann"]
    assert settings.ui.session_ttl_s == 120
    assert (settings.ui.sign_ins_per_user.per_minute, settings.ui.sign_ins_per_user.burst) == (
        10,
        5,
    )


def test_an_attempt_limit_that_sets_one_key_keeps_the_others_default(tmp_path: Path) -> None:
    settings = settings_of(
        tmp_path,
        "[ui.sign_ins_per_user]\nburst = 3\n"
        "[oauth.requests_per_client]\nper_minute = 30\n"
        "[admin.key_attempts_per_address]\nburst = 2\n",
    )
    limits = (
        settings.ui.sign_ins_per_user,
        settings.ui.sign_ins_per_address,
        settings.oauth.requests_per_client,
        settings.oauth.requests_per_address,
        settings.admin.key_attempts_per_key,
        settings.admin.key_attempts_per_address,
    )
    # docs/configuration.md: each key's own default.
    assert [(limit.per_minute, limit.burst) for limit in limits] == [
        (10, 3),
        (30, 10),
        (30, 20),
        (120, 40),
        (10, 5),
        (30, 2),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[ui.users]]\nname = "ann"\npassword_hash = "secret"\n',
            "ui.users[0].password_hash: not a hash from `kindred ui hash-password`",
        ),
        (
            f'[[ui.users]]\nname = " "\npassword_hash = "{HASH}"\n',
            "ui.users[0].name: must not be empty",
        ),
        (
            f'[[ui.users]]\nname = "a"\npassword_hash = "{HASH}"\n[[ui.users]]\nname = "a"\n'
            f'password_hash = "{HASH}"\n',
            "ui.users[].name: 'a' is used twice",
        ),
        ("[ui]\nsession_ttl_s = 5\n", "ui.session_ttl_s: must be at least 60"),
        ("[ui]\nlive_poll_interval_s = 0\n", "ui.live_poll_interval_s: must be positive"),
        (
            "[ui.sign_ins_per_user]\nper_minute = -1\nburst = 5\n",
            "ui.sign_ins_per_user.per_minute: must be positive",
        ),
        (
            "[ui.sign_ins_per_address]\nper_minute = 1\nburst = 0\n",
            "ui.sign_ins_per_address.burst: must be at least 1",
        ),
        (
            '[[ui.users]]\nname = "a"\npassword = "x"\n',
            "ui.users[0]: Object contains unknown field",
        ),
        (
            f'[[ui.users]]\nname = "a"\npassword_hash = "{HASH}"\nrole = "owner"\n',
            "ui.users[0].role: 'owner' is not admin, editor or viewer",
        ),
        (
            "[admin.key_attempts_per_key]\nper_minute = 0\nburst = 5\n",
            "admin.key_attempts_per_key.per_minute: must be positive",
        ),
    ],
)
def test_bad_ui_settings_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        settings_of(tmp_path, text)


def test_a_ui_users_role_is_admin_unless_it_says(tmp_path: Path) -> None:
    settings = settings_of(
        tmp_path,
        f'[[ui.users]]\nname = "ann"\npassword_hash = "{HASH}"\n'
        f'[[ui.users]]\nname = "bob"\npassword_hash = "{HASH}"\nrole = "viewer"\n',
    )
    assert [(u.name, u.role) for u in settings.ui.users] == [("ann", "admin"), ("bob", "viewer")]


def test_the_demo_config_has_a_ui_user_with_the_documented_password() -> None:
    (user,) = load_settings(None, env={}).ui.users
    assert user.name == "demo"
    assert verify_secret("demo-password", user.password_hash)


def test_hash_password_prints_a_hash_of_the_password() -> None:
    result = CliRunner().invoke(main, ["ui", "hash-password", "--password", "s3cret"])
    assert result.exit_code == 0, result.output
    assert verify_secret("s3cret", result.output.strip())
    assert not verify_secret("other", result.output.strip())
