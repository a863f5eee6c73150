"""Shared hypothesis strategies for the pure core: identities, attribute values, observations,
profiles.

Values come from small pools on purpose, so that examples collide (the same key written twice,
the same identity seen by two batches) often enough to exercise the interesting branches.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from kindred.domain.identities import (
    DEFAULT_BLOCKLIST,
    DEVICE_IDENTITY_TYPES,
    USER_IDENTITY_TYPES,
    is_junk,
)
from kindred.domain.observation import AttrValue, ConsentFact, EventFact, Observation, Scalar
from kindred.domain.profile import (
    AttributeEntry,
    Attribution,
    Device,
    IdentityEntry,
    Profile,
    WorkspaceProfile,
)
from kindred.domain.tenancy import SourceType, priority_of

__all__ = [
    "ATTRIBUTE_KEYS",
    "DEVICE_TYPES",
    "KEYED_DEVICE_TYPES",
    "SOURCE_PRIORITIES",
    "TS_BASE",
    "USER_TYPES",
    "WORKSPACE_ID",
    "attr_values",
    "attribute_entries",
    "consent_facts",
    "event_facts",
    "identity_values",
    "junk_values",
    "maybe_junk_identity_values",
    "observations",
    "profiles",
    "scalars",
    "timestamps",
]

# A plausible "now" for batches: 2023-11-14, so that nothing is near 0 or the int64 edge.
TS_BASE = 1_700_000_000_000
WORKSPACE_ID = 7
ATTRIBUTE_KEYS: tuple[str, ...] = ("a", "b", "c", "tier", "$FirstName", "tags")
SOURCE_PRIORITIES: tuple[int, ...] = tuple(sorted({priority_of(s) for s in SourceType}))

# Device identity types from which an observation derives its device key (Observation.device_key).
KEYED_DEVICE_TYPES: tuple[str, ...] = (
    "device_application_stamp",
    "ios_idfv",
    "android_uuid",
    "ios_advertising_id",
    "android_advertising_id",
)
USER_TYPES: tuple[str, ...] = tuple(sorted(USER_IDENTITY_TYPES))
DEVICE_TYPES: tuple[str, ...] = tuple(sorted(DEVICE_IDENTITY_TYPES))

_IDENTITY_ALPHABET = "abcdefxyz0123456789@.-_"


def timestamps(spread: int = 10_000) -> st.SearchStrategy[int]:
    """Millisecond timestamps near TS_BASE."""
    return st.integers(TS_BASE - spread, TS_BASE + spread)


@st.composite
def junk_values(draw: st.DrawFn) -> str:
    """A blocklisted placeholder in any letter case, possibly padded with whitespace."""
    base = draw(st.sampled_from(sorted(DEFAULT_BLOCKLIST)))
    upper = draw(st.lists(st.booleans(), min_size=len(base), max_size=len(base)))
    cased = "".join(c.upper() if u else c for c, u in zip(base, upper, strict=True))
    pad = draw(st.sampled_from(["", " ", "\t", "  "]))
    return f"{pad}{cased}{draw(st.sampled_from(['', ' ']))}"


def identity_values(max_size: int = 8) -> st.SearchStrategy[str]:
    """Real identity values: never junk, no surrounding whitespace (normalize strips it)."""
    return st.text(_IDENTITY_ALPHABET, min_size=1, max_size=max_size).filter(
        lambda v: not is_junk(v, DEFAULT_BLOCKLIST)
    )


def maybe_junk_identity_values() -> st.SearchStrategy[str]:
    return st.one_of(identity_values(), junk_values())


def scalars() -> st.SearchStrategy[Scalar]:
    return st.one_of(
        st.text(max_size=12),
        st.integers(-(2**53), 2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
    )


def attr_values() -> st.SearchStrategy[AttrValue]:
    """User attribute values: a tag (None), a scalar or a list of scalars."""
    return st.one_of(st.none(), scalars(), st.lists(scalars(), max_size=4))


def consent_facts(ts: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[ConsentFact]:
    return st.builds(
        ConsentFact,
        consented=st.booleans(),
        timestamp_ms=ts if ts is not None else timestamps(),
        document=st.none() | st.sampled_from(["doc_v1", "doc_v2"]),
        location=st.none() | st.just("home"),
        hardware_id=st.none(),
    )


@st.composite
def event_facts(draw: st.DrawFn, ts: st.SearchStrategy[int] | None = None) -> EventFact:
    stamp = draw(ts if ts is not None else timestamps())
    kind = draw(st.sampled_from(["custom", "attribution", "opt_out", "screen", "first_run"]))
    if kind == "attribution":
        return EventFact(
            event_type="custom_event",
            timestamp_ms=stamp,
            name=draw(st.sampled_from(["attribution", "Attribution"])),
            custom_event_type="attribution",
            attribution_publisher=draw(st.none() | st.sampled_from(["pub1", "pub2"])),
            attribution_campaign=draw(st.none() | st.sampled_from(["camp1", "camp2"])),
            attribution_delete=draw(st.booleans()),
        )
    if kind == "opt_out":
        return EventFact(event_type="opt_out", timestamp_ms=stamp, is_opted_out=draw(st.booleans()))
    if kind == "screen":
        return EventFact(event_type="screen_view", timestamp_ms=stamp, name="home")
    if kind == "first_run":
        return EventFact(event_type="first_run", timestamp_ms=stamp, is_install=True)
    return EventFact(
        event_type="custom_event",
        timestamp_ms=stamp,
        name=draw(st.sampled_from(["play", "pause"])),
        custom_event_type="navigation",
    )


@st.composite
def observations(
    draw: st.DrawFn,
    *,
    user_types: tuple[str, ...] = ("customer_id", "email", "mobile_number", "other"),
    device_types: tuple[str, ...] = ("device_application_stamp", "ios_idfv", "push_token"),
    identity_value: st.SearchStrategy[str] | None = None,
    attribute_keys: tuple[str, ...] = ATTRIBUTE_KEYS,
    values: st.SearchStrategy[AttrValue] | None = None,
    with_mpid: bool = False,
) -> Observation:
    """A normalized batch. Deleted keys are disjoint from the keys the batch sets (a batch that
    sets and deletes one key is legal, but its intermediate change records are not a net diff).
    """
    idv = identity_value if identity_value is not None else maybe_junk_identity_values()
    vals = values if values is not None else attr_values()
    received = draw(timestamps())
    effective = draw(st.integers(received - 5_000, received))
    keys = st.sampled_from(attribute_keys)
    user_attributes = draw(st.dictionaries(keys, vals, max_size=4))
    free_keys = [k for k in attribute_keys if k not in user_attributes]
    deleted = (
        draw(st.lists(st.sampled_from(free_keys), max_size=2, unique=True)) if free_keys else []
    )
    device_info: dict[str, object] = {}
    if draw(st.booleans()):
        device_info["platform"] = draw(st.sampled_from(["iOS", "Android", "web"]))
    if draw(st.booleans()):
        device_info["limit_ad_tracking"] = draw(st.booleans())
    if draw(st.booleans()):
        device_info["att_authorization_status"] = draw(
            st.sampled_from(["authorized", "denied", "not_determined", "restricted"])
        )
    return Observation(
        received_ms=received,
        effective_ms=effective,
        mpid=draw(st.none() | st.sampled_from([101, 102, -7])) if with_mpid else None,
        user_identities=draw(st.dictionaries(st.sampled_from(user_types), idv, max_size=3)),
        device_identities=draw(st.dictionaries(st.sampled_from(device_types), idv, max_size=2)),
        device_info=device_info,
        user_attributes=user_attributes,
        deleted_user_attributes=tuple(deleted),
        gdpr=draw(st.dictionaries(st.sampled_from(["marketing", "analytics"]), consent_facts())),
        ccpa=draw(st.none() | consent_facts()),
        ip=draw(st.none() | st.sampled_from(["10.0.0.1", "2001:db8::1"])),
        events=tuple(draw(st.lists(event_facts(), max_size=3))),
    )


@st.composite
def attribute_entries(draw: st.DrawFn) -> AttributeEntry:
    priority = draw(st.sampled_from(SOURCE_PRIORITIES))
    if draw(st.integers(0, 4)) == 0:
        return AttributeEntry(
            priority=priority, source="seed", ts_ms=draw(timestamps()), deleted=True
        )
    return AttributeEntry(
        value=draw(attr_values()), priority=priority, source="seed", ts_ms=draw(timestamps())
    )


@st.composite
def _devices(draw: st.DrawFn) -> Device:
    key = draw(identity_values())
    first = draw(timestamps())
    attribution = draw(
        st.none()
        | st.builds(Attribution, publisher=st.just("pub0"), campaign=st.none(), ts_ms=timestamps())
    )
    return Device(
        key=key,
        first_seen_ms=first,
        last_seen_ms=first + draw(st.integers(0, 1000)),
        platform=draw(st.none() | st.just("iOS")),
        info={"screen_width": 320},
        identities={"device_application_stamp": key},
        att_status=draw(st.none() | st.just("denied")),
        att_ts_ms=draw(st.none() | timestamps()),
        attribution=attribution,
    )


@st.composite
def profiles(draw: st.DrawFn, mpid: int = 42) -> Profile:
    """A stored profile with one workspace (WORKSPACE_ID): any state apply can meet."""
    created = draw(timestamps())
    identities = draw(
        st.dictionaries(st.sampled_from(["customer_id", "email", "other"]), identity_values())
    )
    devices = draw(st.lists(_devices(), max_size=2, unique_by=lambda d: d.key))
    workspace = WorkspaceProfile(
        first_seen_ms=created,
        last_seen_ms=created,
        attributes=draw(st.dictionaries(st.sampled_from(ATTRIBUTE_KEYS), attribute_entries())),
        gdpr=draw(st.dictionaries(st.sampled_from(["marketing"]), consent_facts())),
        ccpa=draw(st.none() | consent_facts()),
        devices={d.key: d for d in devices},
    )
    return Profile(
        mpid=mpid,
        scope="a1",
        created_ms=created,
        last_stored_ms=created + draw(st.integers(0, 1000)),
        is_opted_out=draw(st.booleans()),
        opt_out_ts_ms=draw(st.just(0) | timestamps()),
        limit_ad_tracking=draw(st.none() | st.booleans()),
        ip=draw(st.none() | st.just("192.0.2.1")),
        user_identities={
            t: IdentityEntry(value=v, first_seen_ms=created, last_seen_ms=created)
            for t, v in identities.items()
        },
        workspaces={WORKSPACE_ID: workspace},
        account_attributes=draw(
            st.dictionaries(st.sampled_from(ATTRIBUTE_KEYS), attribute_entries(), max_size=2)
        ),
        version=draw(st.integers(1, 5)),
    )


def criteria_trees(
    leaves: st.SearchStrategy[dict[str, Any]], max_leaves: int
) -> st.SearchStrategy[dict[str, Any]]:
    """Audience criteria documents: leaves combined with and / or / exclude."""
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda items: {"and": items}),
            st.lists(inner, min_size=1, max_size=3).map(lambda items: {"or": items}),
            inner.map(lambda item: {"exclude": item}),
        ),
        max_leaves=max_leaves,
    )
