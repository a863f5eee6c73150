"""The scale-out store: PostgreSQL through a psycopg 3 connection pool, shared by many processes."""

from kindred.storage.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
