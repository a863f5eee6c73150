"""`server.writer_process`: off unless the config, `--writer-process` or
KINDRED_WRITER_PROCESS turns it on; refused for roles api and worker, which apply no
batches of their own; the writer's socket beside the store, or in a private directory of
its own when the data directory's path is too long for a socket."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from kindred.bootstrap.writer_process import socket_path
from kindred.config import with_writer_process
from kindred.domain.errors import ConfigError
from tests.unit.test_config_profile_api import settings_of


def test_off_unless_turned_on(tmp_path: Path) -> None:
    assert settings_of(tmp_path, "").server.writer_process is False
    by_env = settings_of(tmp_path, "", env={"KINDRED_WRITER_PROCESS": "1"})
    assert by_env.server.writer_process is True
    assert with_writer_process(settings_of(tmp_path, "")).server.writer_process is True


def test_roles_api_and_worker_refuse_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.writer_process: role api"):
        settings_of(
            tmp_path,
            "",
            env={
                "KINDRED_WRITER_PROCESS": "1",
                "KINDRED_ROLE": "api",
                "KINDRED_STORE_URL": "postgresql://localhost/x",
            },
        )


def test_the_socket_is_beside_the_store_unless_its_path_is_too_long(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "", env={"KINDRED_DATA_DIR": str(tmp_path)})
    assert socket_path(settings) == str(tmp_path.resolve() / "writer.sock")
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    far = msgspec.structs.replace(settings, data_dir=str(deep))
    path = Path(socket_path(far))
    assert len(str(path)) < 100
    assert path.name == "writer.sock"
    assert path.parent.name.startswith("kindred-writer-")
    # The same directory for every process of that server, another for another server.
    assert socket_path(far) == str(path)
    other = msgspec.structs.replace(settings, data_dir=str(deep / "x"))
    assert socket_path(other) != str(path)
