"""`audiences.activation_processes`: how many processes of its own a large activation
computes its pages in, and when there are none."""

from __future__ import annotations

from pathlib import Path

import pytest

from kindred.bootstrap.container import activation_processes_of, build
from kindred.domain.errors import ConfigError
from kindred.storage.memory import MemoryStore
from tests.unit.test_config_profile_api import settings_of


def test_two_processes_unless_told(tmp_path: Path) -> None:
    assert settings_of(tmp_path, "").audiences.activation_processes == 2
    told = settings_of(tmp_path, "[audiences]\nactivation_processes = 3\n")
    assert told.audiences.activation_processes == 3
    assert activation_processes_of(settings_of(tmp_path, "")) is not None
    none = settings_of(tmp_path, "[audiences]\nactivation_processes = 0\n")
    assert activation_processes_of(none) is None  # every page in the server's own process


@pytest.mark.parametrize("value", ["-1", "65"])
def test_a_count_out_of_range_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"audiences\.activation_processes: from 0 to 64"):
        settings_of(tmp_path, f"[audiences]\nactivation_processes = {value}\n")


def test_a_store_given_to_the_container_is_computed_in_its_own_process(tmp_path: Path) -> None:
    """Another process cannot open an in-memory store (or any store handed in)."""
    settings = settings_of(tmp_path, "")
    container = build(settings, store=MemoryStore())
    try:
        assert container.activation_processes is None
    finally:
        container.close()
