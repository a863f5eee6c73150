"""Run the README's quick-start blocks as written and check what they print."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

# The paragraph each block follows, and what its output must hold.
BLOCKS = {
    "Send a batch and look at the profile it made:": '"gold"',
    "Read it through the Profile API with a bearer token:": '"gold"',
}


def main(readme: Path) -> None:
    text = readme.read_text()
    for lead, wanted in BLOCKS.items():
        found = re.search(re.escape(lead) + r"\s*```sh\n(.*?)```", text, re.S)
        if found is None:
            sys.exit(f"README: no sh block after {lead!r}")
        ran = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", found.group(1)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if ran.returncode != 0 or wanted not in ran.stdout:
            sys.exit(f"README block after {lead!r} failed:\n{ran.stdout}\n{ran.stderr}")
        print(f"README block after {lead!r}: ok")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
