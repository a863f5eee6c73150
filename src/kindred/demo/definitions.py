"""What the demo sets up besides its users, so that every page has something to show:
calculated attributes, audiences, an output writing JSON lines into the data directory with
an event and an audience connection, and a webhook nobody answers (its connection faults,
to be resumed).

Plain documents, as the admin API takes them; `kindred demo` and `serve --demo-data` save
the ones missing by name, before the demo batches, so audiences take their members live.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "DEMO_AUDIENCES",
    "DEMO_CALCULATED",
    "FAULTY_WEBHOOK",
    "demo_audience_connections",
    "demo_event_connections",
    "demo_outputs",
]

DEMO_CALCULATED: list[dict[str, Any]] = [
    {
        "name": "plays_30d",
        "description": "Songs played in the last 30 days",
        "draft": {
            "calculation_type": "count",
            "event": {"event": "custom_event", "name": "Play"},
            "window": {"type": "within", "days": 30},
        },
    },
    {
        "name": "favorite_plan",
        "description": "The plan named most often in the user's events",
        "draft": {
            "calculation_type": "most_frequent",
            "event": {"event": "custom_event"},
            "attribute": "plan",
        },
    },
]

DEMO_AUDIENCES: list[dict[str, Any]] = [
    {
        "name": "Gold loyalty members",
        "external_name": "gold-members",
        "tags": ["loyalty"],
        "criteria": {"attribute": "loyalty_tier", "op": "equals", "value": "gold"},
    },
    {
        "name": "Marketing opt-ins",
        "external_name": "marketing-opt-ins",
        "tags": ["consent"],
        "criteria": {"consent": "gdpr", "purpose": "marketing", "state": "consented"},
    },
    {
        "name": "Players this month",
        "external_name": "monthly-players",
        "tags": ["engagement"],
        "criteria": {"event": "custom_event", "name": "Play", "within_days": 30},
    },
]

# Port 9 (discard) on the loopback: nothing listens, every send fails at once.
FAULTY_WEBHOOK = "http://127.0.0.1:9/crm"


def demo_outputs(data_dir: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "demo-files",
            "kind": "jsonl",
            "directory": str(Path(data_dir).resolve() / "demo-output"),
        },
        {"name": "demo-crm", "kind": "webhook", "url": FAULTY_WEBHOOK, "timeout_s": 2},
    ]


def demo_event_connections() -> list[dict[str, Any]]:
    return [{"name": "server-events-to-files", "input": "demo-server", "output": "demo-files"}]


def demo_audience_connections(audience_ids: dict[str, int]) -> list[dict[str, Any]]:
    """The audience connections, given the ids the demo audiences have in the store."""
    return [
        {
            "name": "gold-members-to-files",
            "audience_id": audience_ids["Gold loyalty members"],
            "output": "demo-files",
            "identity_types": ["email", "customer_id"],
            "shared_attributes": ["loyalty_tier"],
        },
        {
            "name": "gold-members-to-crm",
            "audience_id": audience_ids["Gold loyalty members"],
            "output": "demo-crm",
            "identity_types": ["email"],
        },
    ]
