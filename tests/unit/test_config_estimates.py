"""Settings of the audience estimator: `audiences.estimate_refresh_s`, how often a server
reads its samples again in the background."""

from __future__ import annotations

from pathlib import Path

import pytest

from kindred.domain.errors import ConfigError
from tests.unit.test_config_profile_api import settings_of


def test_the_samples_are_refreshed_every_5_s_unless_told(tmp_path: Path) -> None:
    assert settings_of(tmp_path, "").audiences.estimate_refresh_s == 5.0
    told = settings_of(tmp_path, "[audiences]\nestimate_refresh_s = 0.5\n")
    assert told.audiences.estimate_refresh_s == 0.5
    off = settings_of(tmp_path, "[audiences]\nestimate_refresh_s = 0\n")
    assert off.audiences.estimate_refresh_s == 0


@pytest.mark.parametrize("value", ["-1", "5.5", "60"])
def test_a_refresh_slower_than_a_sample_is_kept_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"audiences\.estimate_refresh_s: from 0 to 5"):
        settings_of(tmp_path, f"[audiences]\nestimate_refresh_s = {value}\n")
