"""Where the server's keys come from: the environment over a key file over the store (the
secrets key: over DATA_DIR/secrets.key, never the store); key files private; ServerKeys
answering a given key before the stored one, and rotating the stored one."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from kindred.config import SecuritySettings, Settings, demo_config_text, load_settings
from kindred.config.keys import generate_key, key_source, read_keys, write_key_file
from kindred.domain.errors import ConfigError
from kindred.services.access.server_keys import TOKEN_SIGNING_KEY, ServerKeys
from kindred.storage.memory import MemoryStore
from kindred.system import SecureSecrets


def settings(tmp_path: Path, **security: str) -> Settings:
    base = load_settings(None, data_dir=str(tmp_path / "data"), env={})
    return msgspec.structs.replace(base, security=SecuritySettings(**security))


def test_the_environment_wins_then_the_key_file_then_the_default(tmp_path: Path) -> None:
    plain = settings(tmp_path)
    filed = settings(tmp_path, secrets_key_file="/etc/k/secrets.key", ui_session_key_file="ui.key")
    env = {"KINDRED_SECRETS_KEY": generate_key()}
    assert (
        key_source(plain, "secrets", env).describe() == "environment variable KINDRED_SECRETS_KEY"
    )
    assert key_source(filed, "secrets", {}).where == "/etc/k/secrets.key"
    assert key_source(plain, "secrets", {}).where == str(tmp_path / "data" / "secrets.key")
    assert key_source(filed, "ui-session", {}).where == str(tmp_path / "data" / "ui.key")
    assert key_source(plain, "token-signing", {}).kind == "store"
    with pytest.raises(ConfigError, match="no key 'nope'"):
        key_source(plain, "nope", {})


def test_a_missing_key_file_is_made_private_with_one_key(tmp_path: Path) -> None:
    source = key_source(settings(tmp_path), "secrets", {})
    (first,) = read_keys(source)
    path = Path(source.where)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert read_keys(source) == [first]  # made once, then read
    write_key_file(path, [generate_key(), path.read_text().strip()])
    assert read_keys(source)[1] == first
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_bad_key_names_where_it_came_from(tmp_path: Path) -> None:
    source = key_source(settings(tmp_path), "secrets", {"KINDRED_SECRETS_KEY": "short"})
    with pytest.raises(ConfigError, match="environment variable KINDRED_SECRETS_KEY: a key is 32"):
        read_keys(source, {"KINDRED_SECRETS_KEY": "short"})


def test_server_keys_answer_a_given_key_and_rotate_the_stored_one() -> None:
    store = MemoryStore()
    given = ServerKeys(store, SecureSecrets(), {TOKEN_SIGNING_KEY: b"g" * 32})
    assert given.key(TOKEN_SIGNING_KEY) == b"g" * 32
    with pytest.raises(ConfigError):
        given.rotate(TOKEN_SIGNING_KEY)
    stored = ServerKeys(store, SecureSecrets())
    before = stored.key(TOKEN_SIGNING_KEY)
    assert stored.key(TOKEN_SIGNING_KEY) == before
    stored.rotate(TOKEN_SIGNING_KEY)
    assert stored.key(TOKEN_SIGNING_KEY) != before


def test_the_metrics_token_may_come_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "k.toml"
    config.write_text(demo_config_text() + '\n[metrics]\ntoken_env = "MT"\n')
    assert load_settings(config, env={"MT": "abc"}).metrics.token == "abc"
    with pytest.raises(ConfigError, match=r"metrics\.token_env: environment variable MT"):
        load_settings(config, env={})
