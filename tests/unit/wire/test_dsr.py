"""OpenDSR request bodies (reference §6): v3 and v1 shapes read into a request, every
problem named with its reason."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from kindred.domain.dsr import subject_key
from kindred.wire.dsr import DsrProblem, discovery_body, iso_time, parse_request

ID = "0b0a6f35-3d5e-4b8e-9f2a-2f5c1f8e2a11"


def v3(**changes: Any) -> bytes:
    body: dict[str, Any] = {
        "regulation": "gdpr",
        "subject_request_id": ID,
        "subject_request_type": "erasure",
        "submitted_time": "2021-11-01T15:00:00Z",
        "subject_identities": {"email": {"value": "a@b.c", "encoding": "raw"}},
        "extensions": {
            "opendsr.mparticle.com": {
                "skip_waiting_period": True,
                "subject_identities": {"other6": {"value": "x", "encoding": "raw"}},
            }
        },
    }
    body.update(changes)
    return msgspec.json.encode(body)


def reasons(body: bytes, *, v1: bool = False) -> set[str]:
    with pytest.raises(DsrProblem) as refused:
        parse_request(body, v1=v1)
    return {reason for reason, _ in refused.value.problems}


def test_a_v3_request_names_its_subject_in_canonical_types() -> None:
    parsed = parse_request(v3(subject_request_id=ID.upper(), group_id="g"))
    assert parsed.request_id == ID
    assert parsed.identities == {"email": "a@b.c", "other_id_6": "x"}
    assert parsed.mpid is None
    assert parsed.skip_waiting_period
    assert parsed.submitted_ms == 1_635_778_800_000
    assert parsed.group_id == "g"
    assert iso_time(parsed.submitted_ms) == "2021-11-01T15:00:00Z"


def test_an_mpid_alone_is_the_subject() -> None:
    body = v3(
        subject_identities={},
        extensions={"opendsr.mparticle.com": {"subject_identities": {"mpid": {"value": "-42"}}}},
    )
    parsed = parse_request(body)
    assert (parsed.identities, parsed.mpid) == ({}, -42)
    assert subject_key(parsed.identities, parsed.mpid) == "mpid=-42"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"subject_request_id": "not-a-uuid"}, {"invalid_field"}),
        ({"regulation": "hipaa"}, {"invalid_field"}),
        ({"subject_request_type": "rectify"}, {"invalid_field"}),
        ({"submitted_time": "yesterday"}, {"invalid_field"}),
        ({"subject_identities": {"shoe": {"value": "44"}}, "extensions": {}}, {"invalid_identity"}),
        (
            {"subject_identities": {"other2": {"value": "x"}}, "extensions": {}},
            {"invalid_identity"},
        ),
        (
            {"subject_identities": {"email": {"value": "x", "encoding": "md5"}}, "extensions": {}},
            {"invalid_identity"},
        ),
        ({"subject_identities": {}, "extensions": {}}, {"missing_field"}),
        (
            {
                "extensions": {
                    "opendsr.mparticle.com": {"subject_identities": {"mpid": {"value": "1"}}}
                }
            },
            {"mpid_not_alone"},
        ),
    ],
)
def test_refusals_name_their_reason(changes: dict[str, Any], expected: set[str]) -> None:
    assert reasons(v3(**changes)) == expected


@pytest.mark.parametrize(
    "url",
    [
        "ftp://cb.example.com/status",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "https://",
        "http:///no-host",
        "https://cb.example.com/a b",
        "//cb.example.com/status",
        "http://[::1/",
        7,
    ],
)
def test_a_callback_url_that_is_not_http_is_refused(url: object) -> None:
    body = v3(status_callback_urls=["https://ok.example.com/cb", url])
    with pytest.raises(DsrProblem) as refused:
        parse_request(body)
    assert refused.value.problems == [
        (
            "invalid_callback_url",
            "status_callback_urls[1] must be an http or https URL with a host",
        )
    ]


def test_http_and_https_callback_urls_are_kept() -> None:
    urls = ["https://cb.example.com/status?x=1", "http://127.0.0.1:8080/cb"]
    assert parse_request(v3(status_callback_urls=urls)).callback_urls == urls
    assert reasons(v3(status_callback_urls="https://cb.example.com")) == {"invalid_field"}


def test_a_body_that_is_not_json_is_refused() -> None:
    assert reasons(b"{") == {"invalid_json"}
    assert reasons(b"[]") == {"invalid_json"}


def test_the_v1_shape() -> None:
    body = msgspec.json.encode(
        {
            "subject_request_id": ID,
            "subject_request_type": "access",
            "submitted_time": "2021-11-01T15:00:00Z",
            "subject_identities": [
                {"identity_type": "email", "identity_value": "a@b.c", "identity_format": "raw"}
            ],
        }
    )
    parsed = parse_request(body, v1=True)
    assert (parsed.regulation, parsed.api_version, parsed.identities) == (
        "gdpr",
        "1.0",
        {"email": "a@b.c"},
    )


def test_subject_keys_ignore_the_order_of_identities() -> None:
    assert subject_key({"email": "a", "customer_id": "b"}, None) == subject_key(
        {"customer_id": "b", "email": "a"}, None
    )


def test_discovery_lists_every_identity_type_once() -> None:
    types = [i["identity_type"] for i in discovery_body()["supported_identities"]]
    assert len(types) == len(set(types))
    assert {"email", "controller_customer_id", "mpid", "other10", "phone_number_3"} <= set(types)
