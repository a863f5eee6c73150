"""Demo data: a small, deterministic population of users sent through the demo inputs.

Every batch carries a fixed `source_request_id`, so loading the demo twice changes nothing.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

__all__ = ["demo_batches"]

_FIRST = ["Ann", "Bo", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea"]
_LAST = ["Ng", "Okafor", "Silva", "Kowalski", "Haddad", "Berg", "Ito", "Moreau", "Lund", "Rossi"]
_CITIES = ["Lisbon", "Oslo", "Austin", "Osaka", "Lagos", "Lyon", "Porto", "Denver"]
_PAGES = ["Home", "Search", "Product", "Cart", "Account", "Help"]
_EVENTS = ["Play", "Search", "Share", "Subscribe", "Rate"]
_DAY_MS = 86_400_000


def demo_batches(now_ms: int, users: int = 60) -> list[tuple[str, dict[str, Any]]]:
    """(input name, batch) pairs: each user gets a server batch, some a web session and a
    loyalty record from the custom feed."""
    rng = random.Random(20261122)
    batches: list[tuple[str, dict[str, Any]]] = []
    for n in range(users):
        user = _user(rng, n)
        batches.append(("demo-server", _server_batch(rng, user, n, now_ms)))
        if n % 2 == 0:
            batches.append(("demo-web", _web_batch(rng, user, n, now_ms)))
        if n % 3 == 0:
            batches.append(("demo-feed", _feed_batch(rng, user, n, now_ms)))
    return batches


def _user(rng: random.Random, n: int) -> dict[str, str]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return {
        "customer_id": f"demo-{n:04d}",
        "email": f"{first.lower()}.{last.lower()}{n}@example.com",
        "first": first,
        "last": last,
        "city": rng.choice(_CITIES),
        "das": str(uuid.UUID(int=rng.getrandbits(128))),
    }


def _server_batch(rng: random.Random, user: dict[str, str], n: int, now_ms: int) -> dict[str, Any]:
    start = now_ms - rng.randrange(1, 10) * _DAY_MS
    events = [
        {
            "event_type": "custom_event",
            "data": {
                "event_name": rng.choice(_EVENTS),
                "custom_event_type": "other",
                "timestamp_unixtime_ms": start + i * 60_000,
                "source_message_id": f"demo-s-{n}-{i}",
                "custom_attributes": {"plan": rng.choice(["free", "plus", "pro"])},
            },
        }
        for i in range(rng.randrange(1, 5))
    ]
    return {
        "environment": "development",
        "source_request_id": f"demo-server-{n}",
        "ip": f"203.0.113.{n % 250 + 1}",
        "user_identities": {"customerid": user["customer_id"], "email": user["email"]},
        "user_attributes": {
            "$FirstName": user["first"],
            "$LastName": user["last"],
            "$City": user["city"],
            "favorite_genres": rng.sample(["jazz", "rock", "folk", "pop", "soul"], 2),
        },
        "consent_state": {
            "gdpr": {
                "marketing": {
                    "consented": rng.random() < 0.6,
                    "document": "marketing-v2",
                    "timestamp_unixtime_ms": start,
                }
            }
        },
        "events": events,
    }


def _web_batch(rng: random.Random, user: dict[str, str], n: int, now_ms: int) -> dict[str, Any]:
    start = now_ms - rng.randrange(0, 3) * _DAY_MS - 3_600_000
    session = str(uuid.UUID(int=rng.getrandbits(128)))
    views = [
        {
            "event_type": "screen_view",
            "data": {
                "screen_name": page,
                "timestamp_unixtime_ms": start + i * 30_000,
                "session_uuid": session,
                "source_message_id": f"demo-w-{n}-{i}",
                "page_url": f"https://shop.example.com/{page.lower()}",
            },
        }
        for i, page in enumerate(rng.sample(_PAGES, 3))
    ]
    return {
        "environment": "development",
        "source_request_id": f"demo-web-{n}",
        "mp_deviceid": user["das"],
        "device_info": {"platform": "web", "screen_width": 1440, "screen_height": 900},
        "user_identities": {"customer_id": user["customer_id"]},
        "events": [
            {"event_type": "session_start", "data": {"timestamp_unixtime_ms": start}},
            *views,
        ],
    }


def _feed_batch(rng: random.Random, user: dict[str, str], n: int, now_ms: int) -> dict[str, Any]:
    return {
        "environment": "production",
        "source_request_id": f"demo-feed-{n}",
        "timestamp_unixtime_ms": now_ms - _DAY_MS,
        "user_identities": {"customer_id": user["customer_id"]},
        "user_attributes": {
            "loyalty_tier": rng.choice(["bronze", "silver", "gold"]),
            "lifetime_orders": rng.randrange(0, 40),
        },
    }
