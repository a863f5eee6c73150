"""Versioned SQL migrations shipped as files `NNNN_name.sql` beside each store."""

from __future__ import annotations

from importlib import resources

__all__ = ["Migration", "load_migrations"]


class Migration:
    def __init__(self, version: int, name: str, sql: str) -> None:
        self.version = version
        self.name = name
        self.sql = sql


def load_migrations(package: str) -> list[Migration]:
    """Every migration of `package`'s `migrations/` folder, oldest first."""
    found: list[Migration] = []
    for item in resources.files(package).joinpath("migrations").iterdir():
        if item.name.endswith(".sql"):
            number, _, rest = item.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), item.read_text()))
    found.sort(key=lambda m: m.version)
    return found
