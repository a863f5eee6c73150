"""Throwaway PostgreSQL databases for tests, on the server named by KINDRED_TEST_PG_URL.

When the server cannot be reached the test fails, never skips: a contract silently not
checked against the scale-out store is worse than a red run.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

__all__ = ["PG_URL_ENV", "connect", "pg_url", "temporary_database"]

PG_URL_ENV = "KINDRED_TEST_PG_URL"
_DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def connect(url: str) -> psycopg.Connection[TupleRow]:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        failure = exc
    pytest.fail(
        f"PostgreSQL is unreachable at {url!r}: {failure}\n"
        f"Start the server or point {PG_URL_ENV} at one (postgres tests never skip).",
        pytrace=False,
    )


@contextmanager
def temporary_database() -> Iterator[str]:
    """The conninfo of a fresh database, dropped on exit."""
    server = os.environ.get(PG_URL_ENV, _DEFAULT_PG_URL)
    name = f"kindred_test_{secrets.token_hex(6)}"
    with connect(server) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(server, dbname=name)
    finally:
        with connect(server) as admin:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))


def pg_url(conninfo: str) -> str:
    """Kindred's config takes a URL; psycopg hands out key=value conninfo."""
    parts = dict(item.split("=", 1) for item in conninfo.split())
    host, port = parts.get("host", "127.0.0.1"), parts.get("port", "5432")
    return f"postgresql://{parts.get('user', 'postgres')}@{host}:{port}/{parts['dbname']}"
