"""Databases for a bench run: SQLite files in the run's directory, PostgreSQL schemas of its own.

PostgreSQL is the shared server of TEST_POSTGRES_URL: the run creates its own schemas and
drops only those, never anything else.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import psycopg2

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


class Stores:
    def __init__(self, work: Path) -> None:
        self._work = work
        self._schemas: list[str] = []

    def url(self, database: str, name: str) -> str:
        """A fresh, empty database for one service process."""
        if database == "sqlite":
            return f"sqlite:///{self._work / (name + '.db')}"
        schema = f"bench_{os.getpid()}_{name}".replace("-", "_")
        with psycopg2.connect(POSTGRES_URL) as connection, connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            cursor.execute(f'CREATE SCHEMA "{schema}"')
        self._schemas.append(schema)
        separator = "&" if "?" in POSTGRES_URL else "?"
        return f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"

    def drop(self) -> None:
        if not self._schemas:
            return
        with psycopg2.connect(POSTGRES_URL) as connection, connection.cursor() as cursor:
            for schema in self._schemas:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self._schemas.clear()


def postgres_problem() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        psycopg2.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg2.Error as exc:
        return str(exc).strip()
    return None
