"""`store_url`: a test that asks for it runs on SQLite (None: the default in its temporary
directory) and on a throwaway PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.pg import temporary_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    with temporary_database() as conninfo:
        parts = conninfo_to_dict(conninfo)
        user = parts.get("user", "postgres")
        host = parts.get("host", "127.0.0.1")
        yield f"postgresql://{user}@{host}:{parts.get('port', 5432)}/{parts['dbname']}"
