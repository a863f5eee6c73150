"""The real `mparticle` Python SDK against a real Kindred server (ING-1, ING-2)."""

from __future__ import annotations

import uuid

import mparticle
import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e


def _api(server: Server, key: str = "server-key", secret: str = "server-secret") -> object:
    config = mparticle.Configuration()
    config.host = f"{server.url}/v2"  # must be set before EventsApi copies it
    config.api_key = key
    config.api_secret = secret
    return mparticle.EventsApi(config)


def _batch(customer: str, email: str) -> mparticle.Batch:
    batch = mparticle.Batch()
    batch.environment = "development"
    identities = mparticle.UserIdentities()
    identities.customerid = customer
    identities.email = email
    batch.user_identities = identities
    batch.user_attributes = {"tier": "gold", "$firstname": "Ann", "genres": ["jazz", "folk"]}
    device = mparticle.DeviceInformation()
    device.ios_idfv = str(uuid.uuid5(uuid.NAMESPACE_URL, customer))
    device.platform = "iOS"
    device.att_authorization_status = "authorized"
    device.att_timestamp_unixtime_ms = 1_700_000_000_000
    batch.device_info = device
    gdpr = mparticle.GDPRConsentState()
    gdpr.consented = True
    gdpr.document = "doc_v4"
    gdpr.timestamp_unixtime_ms = 1_700_000_000_000
    consent = mparticle.ConsentState()
    consent.gdpr = {"Marketing": gdpr}
    batch.consent_state = consent
    play = mparticle.AppEvent(event_name="Play", custom_event_type="navigation")
    play.custom_attributes = {"song": "So What", "length": 562}
    screen = mparticle.ScreenViewEvent()
    screen.screen_name = "Home"
    commerce = mparticle.CommerceEvent(
        mparticle.ProductAction("purchase", products=[mparticle.Product(id="sku-1", price=9.5)])
    )
    opt_out = mparticle.OptOutEvent()
    opt_out.is_opted_out = False
    batch.events = [
        mparticle.SessionStartEvent(),
        play,
        screen,
        commerce,
        mparticle.CrashReportEvent(),  # the SDK tags it commerce_event: accepted all the same
        opt_out,
        mparticle.SessionEndEvent(),
    ]
    return batch


def test_sdk_upload_builds_a_profile(server: Server) -> None:
    api = _api(server)
    api.upload_events(_batch("sdk-1", "sdk1@example.com"))  # type: ignore[attr-defined]

    profile = server.profile(identity="customer_id=sdk-1")
    assert profile is not None
    assert profile["user_identities"]["customer_id"]["value"] == "sdk-1"
    assert profile["user_identities"]["email"]["value"] == "sdk1@example.com"
    workspace = profile["workspaces"]["1"]
    attributes = {k: v["value"] for k, v in workspace["attributes"].items()}
    assert attributes == {"tier": "gold", "$FirstName": "Ann", "genres": ["jazz", "folk"]}
    assert workspace["gdpr"]["marketing"]["consented"] is True
    (device,) = workspace["devices"].values()
    assert device["identities"] == {"ios_idfv": str(uuid.uuid5(uuid.NAMESPACE_URL, "sdk-1"))}
    assert device["att_status"] == "authorized"
    assert device["platform"] == "iOS"
    assert profile.get("is_opted_out", False) is False


def test_sdk_bulk_upload_and_returning_user(server: Server) -> None:
    api = _api(server)
    first = _batch("sdk-2", "sdk2@example.com")
    second = _batch("sdk-3", "sdk3@example.com")
    api.bulk_upload_events([first, second])  # type: ignore[attr-defined]
    one = server.profile(identity="customer_id=sdk-2")
    assert one is not None
    assert server.profile(identity="customer_id=sdk-3") is not None

    returning = mparticle.Batch()
    returning.environment = "development"
    returning.user_identities = mparticle.UserIdentities(email="sdk2@example.com")
    returning.user_identities.customerid = "sdk-2"
    returning.user_attributes = {"tier": "platinum"}
    api.upload_events(returning)  # type: ignore[attr-defined]

    again = server.profile(identity="email=sdk2@example.com")
    assert again is not None
    assert again["mpid"] == one["mpid"]
    assert again["workspaces"]["1"]["attributes"]["tier"]["value"] == "platinum"


def test_sdk_sees_auth_errors(server: Server) -> None:
    api = _api(server, secret="not-the-secret")
    with pytest.raises(mparticle.rest.ApiException) as raised:
        api.upload_events(_batch("sdk-4", "sdk4@example.com"))  # type: ignore[attr-defined]
    assert raised.value.status == 403
    assert server.profile(identity="customer_id=sdk-4") is None
