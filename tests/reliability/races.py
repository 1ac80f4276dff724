"""Forcing an interleaving of two calls on PostgreSQL with a row lock held by the test.

The test's own connection locks a row that call A needs; A starts and provably waits on that
lock (pg_blocking_pids); then B starts and runs until it waits too (on the test's lock or on
A) or ends; then the lock goes. A is thus caught in the middle of its transaction while B
runs, instead of hoping the scheduler does it. The server's connections carry an
application_name of their own, so that only they are counted (other test runs share the
PostgreSQL server).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import psycopg2

from tests.conftest import POSTGRES_SCHEMA, POSTGRES_URL, _postgres_test_url
from tests.support import RunningService, serve

WAIT = 10.0  # seconds a call may take to reach (or pass) the lock before the race goes on


@dataclass(frozen=True)
class Served:
    """A server on a PostgreSQL schema of its own, whose connections the test can tell apart."""

    running: RunningService
    schema: str
    application_name: str
    admin: object

    def lock(self, table: str, column: str, value: str) -> contextlib.AbstractContextManager:
        return row_locked(self.schema, table, f'"{column}"::text = %s', (value,))

    def race(self, lock, first, second) -> Race:
        return forced_race(self.admin, self.application_name, lock, first, second)


@contextlib.contextmanager
def served_on_postgres(admin, definition, name: str) -> Iterator[Served]:
    """definition served on a fresh schema (dropped afterwards), its connections named."""
    schema = f"{POSTGRES_SCHEMA}_{name}"
    application_name = f"{name}-{os.getpid()}"
    url = f"{_postgres_test_url(admin, schema)}&application_name={application_name}"
    try:
        with serve(definition, url) as running:
            yield Served(running, schema, application_name, admin)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@dataclass(frozen=True)
class Outcome:
    """What a call answered: its code, and its response when OK."""

    code: grpc.StatusCode
    response: object = None
    details: str = ""


def outcome_of(call: Callable[[], object]) -> Outcome:
    try:
        return Outcome(grpc.StatusCode.OK, call())
    except grpc.RpcError as error:
        return Outcome(error.code(), None, error.details() or "")


@contextlib.contextmanager
def row_locked(schema: str, table: str, where: str, params: tuple) -> Iterator[object]:
    """The rows of table matching where, locked FOR UPDATE by a connection of the test's own
    inside the block; yields the connection (None when no row matched: nothing is locked)."""
    connection = psycopg2.connect(POSTGRES_URL, application_name=f"race-locks-{uuid.uuid4().hex}")
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT 1 FROM "{schema}"."{table}" WHERE {where} FOR UPDATE', params)
            yield connection if cursor.rowcount else None
    finally:
        connection.rollback()
        connection.close()


def waiting(admin, application_name: str) -> int:
    """How many of the server's connections wait on a lock (of the test's, or of each other)."""
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = %s AND cardinality(pg_blocking_pids(pid)) > 0",
            (application_name,),
        )
        return cursor.fetchone()[0]


def until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@dataclass(frozen=True)
class Race:
    first: Outcome
    second: Outcome
    forced: bool  # the first call provably waited mid-transaction while the second ran


def forced_race(
    admin,
    application_name: str,
    lock: contextlib.AbstractContextManager,
    first: Callable[[], object],
    second: Callable[[], object],
) -> Race:
    """Run first until it waits on lock, then second until it waits or ends, then release."""
    with ThreadPoolExecutor(2) as pool:
        with lock as held:
            a: Future = pool.submit(outcome_of, first)
            forced = held is not None and until(
                lambda: a.done() or waiting(admin, application_name) >= 1
            )
            forced = forced and not a.done()
            b: Future = pool.submit(outcome_of, second)
            if forced:
                until(lambda: b.done() or waiting(admin, application_name) >= 2)
                forced = not a.done()
        return Race(a.result(), b.result(), forced)
