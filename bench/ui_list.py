"""The web UI's audience list at scale (issue 20: under 300 ms with 1,000 audiences):
a store with 1,000 audiences, each with members in its membership log (some entered and
left within the last 24 hours), and `GET /ui/audiences` timed in process (the Starlette
app, a signed-in session), every row's metrics and connections computed.

    python bench/ui_list.py                       # SQLite, 1,000 audiences, 50 members each
    python bench/ui_list.py --audiences 1000 --members 200 --runs 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.testclient import TestClient

from bench.common import machine
from kindred.api.app import create_app
from kindred.audiences.definition import AudienceDef, MembershipChange
from kindred.bootstrap import Container, build
from kindred.config import load_settings

# The e2e config: its UI user `tester` signs in.
CONFIG = Path(__file__).resolve().parent.parent / "tests" / "e2e" / "kindred-e2e.toml"
DAY_MS = 86_400_000


def seed(container: Container, audiences: int, members: int) -> None:
    """`audiences` active audiences with `members` members each; a tenth of them entered
    and another tenth left within the last day."""
    now = container.clock.now_ms()
    service = container.audiences
    for n in range(audiences):
        made = service.create(
            AudienceDef(
                name=f"Audience {n}",
                workspaces=[1],
                tags=[f"group-{n % 10}"],
                criteria={"attribute": "tier", "op": "equals", "value": f"t{n}"},
            ),
            created_by="tester",
        )
        changes = [
            MembershipChange(
                audience_id=made.id,
                mpid=1_000_000 * n + m,
                entered=True,
                at_ms=now - (DAY_MS // 2 if m % 10 == 0 else 3 * DAY_MS),
                reason="bench",
            )
            for m in range(members + members // 10)
        ]
        changes += [
            MembershipChange(
                audience_id=made.id,
                mpid=1_000_000 * n + members + m,
                entered=False,
                at_ms=now - DAY_MS // 4,
                reason="bench",
            )
            for m in range(members // 10)
        ]
        with container.store.unit_of_work() as uow:
            uow.memberships.append(changes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--audiences", type=int, default=1000)
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        container = build(load_settings(CONFIG, data_dir=tmp, env={}))
        container.store.migrate()
        started = time.perf_counter()
        seed(container, args.audiences, args.members)
        print(f"seeded {args.audiences} audiences in {time.perf_counter() - started:.1f} s")
        app = create_app(container, manage_lifecycle=False)
        with TestClient(app, base_url="http://localhost") as client:
            signed = client.post(
                "/ui/login",
                data={"name": "tester", "password": "tester-password"},
                follow_redirects=False,
            )
            assert signed.status_code == 303, signed.text
            timings = []
            for _ in range(args.runs + 1):
                began = time.perf_counter()
                answer = client.get("/ui/audiences?show=all")
                timings.append((time.perf_counter() - began) * 1000)
                assert answer.status_code == 200
                assert answer.text.count("<tr>") >= args.audiences
            timings = timings[1:]  # the first run fills the template cache
        print(machine())
        print(
            f"GET /ui/audiences, {args.audiences} audiences x {args.members} members:"
            f" median {statistics.median(timings):.0f} ms, min {min(timings):.0f} ms,"
            f" max {max(timings):.0f} ms over {args.runs} runs"
        )


if __name__ == "__main__":
    main()
