"""The docs are tests: every `sh` and `python` block of README.md and docs/*.md runs, as
written, against a real server started from the demo config with the demo data; any other
block must be marked `<!-- illustrative: why -->` on the line before it.

Two things are adjusted, both the reader's own circumstances: the server's address (the
examples say http://127.0.0.1:8080; the test's server has a port of its own) and
`KINDRED_DATA_DIR` (the examples' `kindred` commands then read the test server's store, as
they read ./data beside a server started with scripts/start.sh). `curl` answers of 400 and
above fail the block (`--fail-with-body`): an example that only prints an error is broken.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import KINDRED, Server, make_server

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEMO_CONFIG = ROOT / "src" / "kindred" / "demo" / "kindred.toml"
DOCUMENTED_URL = "http://127.0.0.1:8080"
RUNNABLE = {"sh", "python"}
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_MARK = re.compile(r"<!-- illustrative: [^>]+ -->\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    language: str
    text: str
    illustrative: bool

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} ({self.language or 'no language'})"


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(path, line, match.group(1), match.group(2), bool(_MARK.search(before))))
    return found


def test_every_block_runs_or_says_why_it_does_not() -> None:
    unmarked = [
        str(b)
        for path in DOCS
        for b in blocks(path)
        if b.language not in RUNNABLE and not b.illustrative
    ]
    assert not unmarked, f"blocks neither runnable nor marked illustrative: {unmarked}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("docs")
    server = make_server(tmp)
    server.config = DEMO_CONFIG
    server.data_dir.mkdir(parents=True)
    loaded = subprocess.run(
        [*KINDRED, "demo", "--data-dir", str(server.data_dir)],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    server.start()
    try:
        yield server
    finally:
        server.stop()


# curl of the examples, failing on an HTTP error answer as a reader would notice one.
_SH_PREAMBLE = 'curl() { command curl --silent --show-error --fail-with-body "$@"; }\n'


def run(block: Block, server: Server) -> subprocess.CompletedProcess[str]:
    text = block.text.replace(DOCUMENTED_URL, server.url)
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **server.env,
        "KINDRED_DATA_DIR": str(server.data_dir),
        "PATH": f"{venv_bin}{os.pathsep}{server.env.get('PATH', '')}",
    }
    command = (
        ["bash", "-euo", "pipefail", "-c", _SH_PREAMBLE + text]
        if block.language == "sh"
        else [sys.executable, "-c", text]
    )
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_the_examples_run_as_written(path: Path, demo: Server) -> None:
    for block in blocks(path):
        if block.language not in RUNNABLE or block.illustrative:
            continue
        ran = run(block, demo)
        assert ran.returncode == 0, f"{block}:\n{block.text}\nstdout:\n{ran.stdout}\n{ran.stderr}"
