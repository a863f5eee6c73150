"""`attribute_ttl` of a workspace (RET-4): attribute keys or glob patterns to a time to live,
refused at load with the key named when a pattern or a duration is bad."""

from __future__ import annotations

from pathlib import Path

import pytest

from kindred.config.tenancy import tenancy_from
from kindred.domain.errors import ConfigError
from tests.unit.test_config_profile_api import settings_of

DAY = 86_400_000


def test_a_workspace_gives_keys_and_patterns_their_ttl(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, 'attribute_ttl = { "pii_*" = "30d", "last_search" = "12h" }\n')
    assert settings.retention.expiry_interval_s == 3600
    rules = tenancy_from(settings).attribute_ttls[1]
    assert rules.ttl_ms("pii_email") == 30 * DAY
    assert rules.ttl_ms("last_search") == DAY // 2
    assert rules.ttl_ms("plan") is None


def test_no_rules_no_expiry(tmp_path: Path) -> None:
    assert tenancy_from(settings_of(tmp_path, "")).attribute_ttls == {}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('{ "pii_*" = "30x" }', r"attribute_ttl\.'pii_\*': '30x' is not a duration"),
        ('{ "pii_*" = "0h" }', r"attribute_ttl\.'pii_\*': '0h' must be longer than zero"),
        ('{ "pii_[ab]" = "1d" }', r"attribute_ttl\.'pii_\[ab\]': .*only '\*' and '\?'"),
        ('{ "" = "1d" }', r"attribute_ttl\.'': an attribute key or pattern must not be empty"),
        ('{ "pii_*" = 30 }', r"attribute_ttl"),
    ],
)
def test_bad_rules_are_refused_naming_the_key(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"accounts\[0\]\.workspaces\[0\]\." + message):
        settings_of(tmp_path, f"attribute_ttl = {table}\n")


def test_a_negative_expiry_interval_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"retention\.expiry_interval_s: must be >= 0"):
        settings_of(tmp_path, "[retention]\nexpiry_interval_s = -1\n")
