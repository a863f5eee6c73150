"""`account_attributes` on an input (PRF-4): its batches' user attributes are the account's,
written at the account rank; only server-side inputs may have it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kindred.config.tenancy import tenancy_from
from kindred.domain.errors import ConfigError
from kindred.domain.tenancy import SourceType, priority_of
from tests.unit.test_config_profile_api import settings_of


def an_input(source_type: str, *extra: str) -> str:
    lines = [
        "[[accounts.workspaces.inputs]]",
        f'name = "{source_type}"',
        f'source_type = "{source_type}"',
        f'api_key = "{source_type}-key"',
        'api_secret = "s"',
        *extra,
    ]
    return "\n".join(lines) + "\n"


def test_an_account_input_writes_at_the_account_rank(tmp_path: Path) -> None:
    text = an_input("custom_feed", "account_attributes = true") + an_input("server")
    tenancy = tenancy_from(settings_of(tmp_path, text))
    crm, server = tenancy.inputs_by_name["custom_feed"], tenancy.inputs_by_name["server"]
    assert crm.account_attributes
    assert crm.priority == priority_of(SourceType.ACCOUNT)
    assert crm.priority > priority_of(SourceType.CUSTOM_FEED)
    assert (server.account_attributes, server.priority) == (False, priority_of(SourceType.SERVER))


@pytest.mark.parametrize("source_type", ["web", "ios", "android"])
def test_client_inputs_may_not_write_account_attributes(tmp_path: Path, source_type: str) -> None:
    with pytest.raises(ConfigError, match=r"inputs\[0\]\.account_attributes: only server-side"):
        settings_of(tmp_path, an_input(source_type, "account_attributes = true"))
