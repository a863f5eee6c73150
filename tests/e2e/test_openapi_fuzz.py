"""Schemathesis against the served OpenAPI document of the Profile API: generated requests,
valid and not, never get a server error, and every answer matches the document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import Server, make_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("fuzz"))
    srv.start()
    # One known profile, so that some generated reads find something.
    batch = {"environment": "production", "user_identities": {"customer_id": "fuzz-1"}}
    httpx.post(f"{srv.url}/v2/events", json=batch, auth=("server-key", "server-secret"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def bearer(fuzzed_server: Server) -> str:
    response = httpx.post(
        f"{fuzzed_server.url}/oauth/token",
        json={
            "client_id": "e2e-client",
            "client_secret": "e2e-secret",
            "grant_type": "client_credentials",
        },
    )
    return str(response.json()["access_token"])


@pytest.fixture(scope="module")
def profile_api_schema(fuzzed_server: Server) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzzed_server.url}/openapi.json")


def test_no_request_gets_a_server_error(
    profile_api_schema: schemathesis.schemas.BaseSchema, bearer: str
) -> None:
    operations = [
        result.ok() for result in profile_api_schema.get_all_operations() if isinstance(result, Ok)
    ]
    assert len(operations) == 4
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def fuzz(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {bearer}"},
                timeout=10,
                checks=[
                    schemathesis.checks.not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ],
            )

        fuzz()
