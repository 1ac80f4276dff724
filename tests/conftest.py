"""Database fixtures: every store test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import quote

import psycopg2
import pytest

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Each test run works in its own schema, so that a shared `test` database is never wiped.
POSTGRES_SCHEMA = f"draft_test_{os.getpid()}"


# ---------------------------------------------------------------------------
# Databases
# ---------------------------------------------------------------------------


def _postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        psycopg2.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg2.Error as exc:
        return str(exc).strip()
    return None


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[psycopg2.extensions.connection]:
    problem = _postgres_reachable()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required under CI: {problem}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {problem}")
    connection = psycopg2.connect(POSTGRES_URL)
    connection.autocommit = True
    yield connection
    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{POSTGRES_SCHEMA}" CASCADE')
    connection.close()


def _postgres_test_url(admin, schema: str = POSTGRES_SCHEMA, **server_settings: str | int) -> str:
    """A URL whose connections work in `schema`, created empty (the caller drops others);
    server_settings (e.g. lock_timeout=300) are set for every session."""
    with admin.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        cursor.execute(f'CREATE SCHEMA "{schema}"')
    return postgres_url_with(search_path=schema, **server_settings)


def postgres_url_with(**server_settings: str | int) -> str:
    """POSTGRES_URL with libpq `options` setting each of server_settings for every session."""
    options = " ".join(f"-c{name}={value}" for name, value in server_settings.items())
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options={quote(options)}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    """A fresh, empty database per test: a SQLite file, or a clean PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return _postgres_test_url(request.getfixturevalue("postgres_admin"))


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """For tests about behaviour that does not depend on the database engine."""
    return f"sqlite:///{tmp_path / 'test.db'}"
