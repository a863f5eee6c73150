"""A Kindred wired from a config file (SQLite in a temporary directory, a fake clock) whose
outputs point at local receivers, for forwarding tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from kindred.bootstrap import Container, build
from kindred.config import load_settings
from kindred.ports import Store
from kindred.services.forwarding.delivery import Lane
from kindred.services.writes.commands import Accepted, BatchOutcome
from kindred.wire.observe import observe
from tests.fakes import FakeClock, SequentialMpids

__all__ = ["BASE_CONFIG", "NOW", "World", "batch"]

NOW = 1_700_000_000_000

BASE_CONFIG = """
[org]
id = 1
name = "T"

[[accounts]]
id = 1
name = "A"

[[accounts.workspaces]]
id = 1
name = "W"

[[accounts.workspaces.inputs]]
name = "server"
source_type = "server"
api_key = "server-key"
api_secret = "server-secret"

[[accounts.workspaces.inputs]]
name = "web"
source_type = "web"
api_key = "web-key"

[[accounts.workspaces.inputs]]
name = "feed"
source_type = "partner_feed"
api_key = "feed-key"
api_secret = "feed-secret"
protection = "read_only"

[forwarding.retry]
base_s = 1
max_delay_s = 60
max_attempts = 4
max_failing_s = 3600
"""


def batch(customer: str, *names: str, **attributes: Any) -> dict[str, Any]:
    return {
        "environment": "production",
        "user_identities": {"customer_id": customer},
        "user_attributes": attributes,
        "device_info": {"platform": "iOS", "ios_idfv": f"idfv-{customer}"},
        "ip": "203.0.113.9",
        "events": [
            {
                "event_type": "custom_event",
                "data": {
                    "event_name": name,
                    "custom_event_type": "other",
                    "custom_attributes": {"n": str(i), "secret": "x"},
                },
            }
            for i, name in enumerate(names)
        ],
    }


class World:
    def __init__(
        self,
        tmp: Path,
        extra_config: str,
        store_url: str | None = None,
        *,
        store: Store | None = None,
        first_mpid: int = 1,
    ) -> None:
        """`store_url`: PostgreSQL instead of SQLite in the temporary directory (also for
        worker processes started on the config file written here). `store`: this one (a
        memory store, shared by the worlds standing for several processes); `first_mpid`: where
        its MPIDs start (apart from another world's on the same store)."""
        config = tmp / "kindred.toml"
        section = f'[store]\nurl = "{store_url}"\n' if store_url else ""
        config.write_text(BASE_CONFIG.replace("[org]", section + "[org]", 1) + extra_config)
        self.settings = load_settings(config, data_dir=str(tmp / "data"), env={})
        self.clock = FakeClock(NOW)
        self.container: Container = build(
            self.settings, clock=self.clock, mpids=SequentialMpids(first_mpid), store=store
        )
        self.container.store.migrate()

    def send(self, body: dict[str, Any], input_name: str = "server") -> BatchOutcome:
        source = self.container.tenancy.input_named(input_name)
        assert source is not None
        raw = msgspec.json.encode(body)
        item = Accepted(source, observe(raw, source, self.clock.now_ms()), raw)
        (outcome,) = self.container.commands.run_all([item])
        return outcome

    def lane(self, name: str) -> Lane:
        lanes = [lane for lane in self.container.delivery.lanes() if lane.name == name]
        assert lanes, f"no lane {name}"
        return lanes[0]

    def close(self) -> None:
        self.container.close()
