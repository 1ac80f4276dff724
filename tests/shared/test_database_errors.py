"""Real database failures map to retryable codes by SQLSTATE and driver, not by message text."""

from __future__ import annotations

import os
import sqlite3

import grpc
import peewee
import pytest
from google.rpc import code_pb2, error_details_pb2

from shared.db import open_database
from shared.errors import database_failure, to_status
from tests.conftest import POSTGRES_URL
from tests.processes import free_port

# An advisory lock key of this test run's own: the PostgreSQL server is shared.
LOCK_KEY = 0x6661756C7400 + os.getpid()


def _raised(action) -> BaseException:
    with pytest.raises(peewee.PeeweeException) as caught:
        action()
    return caught.value


def _code_and_reason(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    status = to_status(exc, "test-service")
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    return grpc.StatusCode[code_pb2.Code.Name(status.code)], info.reason


def test_a_refused_connection_is_unavailable():
    database = open_database(f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    error = _raised(database.connect)
    assert database_failure(error) == "unavailable"
    assert _code_and_reason(error) == (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")
    assert "retry" in to_status(error, "test-service").message


@pytest.mark.postgres
def test_a_terminated_backend_is_unavailable_on_this_call_and_on_the_next(postgres_admin):
    database = open_database(POSTGRES_URL)
    with database.connection_context():
        during = _raised(
            lambda: database.execute_sql("SELECT pg_terminate_backend(pg_backend_pid())")
        )
        after = _raised(lambda: database.execute_sql("SELECT 1"))
    database.close_all()
    assert database_failure(during) == "unavailable"  # 57P01 admin_shutdown
    assert database_failure(after) == "unavailable"  # the link is gone: no SQLSTATE
    assert _code_and_reason(after)[0] == grpc.StatusCode.UNAVAILABLE


@pytest.mark.postgres
def test_a_lock_timeout_is_contention_and_a_statement_timeout_is_a_deadline(postgres_admin):
    database = open_database(POSTGRES_URL)
    with postgres_admin.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        with database.connection_context():
            database.execute_sql("SET lock_timeout = 50")
            lock_timeout = _raised(
                lambda: database.execute_sql("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            )
            database.execute_sql("SET lock_timeout = 0; SET statement_timeout = 50")
            statement_timeout = _raised(lambda: database.execute_sql("SELECT pg_sleep(5)"))
    finally:
        with postgres_admin.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        database.close_all()
    assert database_failure(lock_timeout) == "contention"
    assert _code_and_reason(lock_timeout) == (grpc.StatusCode.ABORTED, "DATABASE_CONTENTION")
    assert database_failure(statement_timeout) == "cancelled"
    assert _code_and_reason(statement_timeout)[0] == grpc.StatusCode.DEADLINE_EXCEEDED


def test_a_sqlite_database_locked_by_another_writer_is_contention(tmp_path):
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    try:
        database = peewee.SqliteDatabase(str(path), timeout=0)
        error = _raised(lambda: database.execute_sql("INSERT INTO t VALUES (1)"))
        database.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert database_failure(error) == "contention"
    assert _code_and_reason(error)[0] == grpc.StatusCode.ABORTED


def test_other_database_errors_are_internal():
    database = peewee.SqliteDatabase(":memory:")
    error = _raised(lambda: database.execute_sql("SELECT * FROM no_such_table"))
    assert database_failure(error) is None
    assert _code_and_reason(error)[0] == grpc.StatusCode.INTERNAL
