"""`kindred deliver` and `kindred connections ...` on a store with pending deliveries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.forwarding_world import World, batch
from tests.receiver import Answer, receiving

__all__: list[str] = []


def kindred(tmp: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINDRED_")}
    where = ["--config", str(tmp / "kindred.toml"), "--data-dir", str(tmp / "data")]
    result = subprocess.run(
        [sys.executable, "-m", "kindred.cli", *args, *where],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def output(tmp: Path, *args: str) -> Any:
    return json.loads(kindred(tmp, *args).stdout)


def test_deliver_dead_letters_replay_and_resume_from_the_command_line(tmp_path: Path) -> None:
    with receiving() as receiver:
        world = World(
            tmp_path,
            f"""
[[outputs]]
name = "hook"
kind = "webhook"
url = "{receiver.url}"

[[event_connections]]
name = "to-hook"
input = "server"
output = "hook"
""",
        )
        try:
            world.send(batch("c1", "refused"))
            receiver.script.append(Answer(422))
            assert output(tmp_path, "deliver") == {"finished_rows": 1}
            (dead,) = output(tmp_path, "connections", "dead-letters")
            assert (dead["connection"], dead["mpid"]) == ("to-hook", "1")
            assert "422" in dead["error"]
            assert output(tmp_path, "connections", "replay", "--id", str(dead["id"])) == {
                "replayed": 1
            }
            assert output(tmp_path, "connections", "dead-letters") == []
            assert output(tmp_path, "deliver") == {"finished_rows": 1}
            assert [m["events"][0]["data"]["event_name"] for m in receiver.unique()] == ["refused"]
            (view,) = output(tmp_path, "connections", "list")
            assert (view["name"], view["status"], view["delivered"]) == ("to-hook", "sending", 1)
            assert output(tmp_path, "connections", "resume", "to-hook")["status"] == "sending"
            missing = kindred(tmp_path, "connections", "resume", "nope", check=False)
            assert missing.returncode == 1
            assert "no connection 'nope'" in missing.stderr
        finally:
            world.close()
