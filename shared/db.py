"""Database from a URL, and the migrations runner both services use."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlparse

import peewee
from playhouse.migrations import Runner
from playhouse.pool import MaxConnectionsExceeded, PooledPostgresqlDatabase

from shared.calls import check_call_alive, current_call
from shared.config import ConfigError
from shared.metrics import active as active_metrics
from shared.tracing import TransactionSpan
from shared.tracing import active as active_tracer

_LOGGER = logging.getLogger(__name__)

# SQLite: WAL lets readers run beside the one writer; busy_timeout makes a second writer
# wait instead of failing; IMMEDIATE transactions take the write lock up front so that
# two read-then-write transactions cannot deadlock on lock upgrade.
SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_PRAGMAS: dict[str, object] = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
    "synchronous": "normal",
}
POSTGRES_POOL_SIZE = 32  # the calls lane's (shared.lanes): an admitted call never waits
WATCH_READ_CONNECTIONS = 4  # watch streams' short reads at once (shared.watch), beside them
# What one process opens at most: the pool, and the event feed's LISTEN connection.
POSTGRES_CONNECTIONS = POSTGRES_POOL_SIZE + WATCH_READ_CONNECTIONS + 1
# statement_timeout is an int32 of milliseconds (~24.8 days); a client's deadline may be
# years away, and a larger value would fail every BEGIN. Clamped, such a call is bounded by
# the largest timeout PostgreSQL accepts: no statement of ours runs that long anyway.
MAX_STATEMENT_TIMEOUT_MS = 2**31 - 1
_MIGRATION_LOCK_ID = 0x6472616674  # "draft": one migrator at a time per PostgreSQL database


def open_database(url: str) -> peewee.Database:
    """A peewee database for `sqlite:///path` (relative or `////absolute`) or `postgresql://`.

    Query parameters of a PostgreSQL URL go to libpq as they are (`sslmode`,
    `application_name`, `options=-csearch_path%3Dx`, ...).
    """
    if url.startswith("sqlite:///"):
        path = Path(unquote(url[len("sqlite:///") :]))
        if not path.name:
            raise ConfigError(f"database URL {url!r} names no file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"database URL {url!r}: cannot create {path.parent}: {exc}") from None
        return TracedSqliteDatabase(str(path), pragmas=SQLITE_PRAGMAS, lock_type="IMMEDIATE")
    parsed = urlparse(url)
    if parsed.scheme in ("postgresql", "postgres"):
        name = parsed.path.lstrip("/")
        if not name:
            raise ConfigError(f"database URL {url!r} names no database")
        return TracedPostgresqlDatabase(
            unquote(name),
            user=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            host=parsed.hostname,
            port=parsed.port,
            max_connections=POSTGRES_POOL_SIZE + WATCH_READ_CONNECTIONS,
            stale_timeout=300,
            timeout=10,
            **{"connect_timeout": 5, **dict(parse_qsl(parsed.query))},
        )
    raise ConfigError(f"unsupported database URL {url!r}: use sqlite:/// or postgresql://")


def describe_database(url: str) -> str:
    """Which database url means, for an operator: a SQLite file's absolute path (a relative
    one is taken from the working directory), or the PostgreSQL URL without its password."""
    if url.startswith("sqlite:///"):
        path = Path(unquote(url[len("sqlite:///") :])).absolute()
        return f"SQLite file {path}" + ("" if path.exists() else " (new: created now)")
    parsed = urlparse(url)
    netloc = parsed.hostname or ""
    if parsed.port:
        netloc = f"{netloc}:{parsed.port}"
    if parsed.username:
        netloc = f"{parsed.username}@{netloc}"
    query = urlencode([(k, v) for k, v in parse_qsl(parsed.query) if k != "password"])
    return f"PostgreSQL {parsed._replace(netloc=netloc, query=query).geturl()}"


class CallBoundPostgresqlDatabase(PooledPostgresqlDatabase):
    """Pooled PostgreSQL whose transactions end with the RPC they serve (see shared.calls).

    A transaction begun for a call with a deadline bounds each of its statements by the
    time left (`SET LOCAL`, sent with BEGIN in one round trip), so that a statement waiting
    on a lock or running long is cancelled when the client stops waiting; and COMMIT is
    refused, rolling back, once the deadline passed or the client cancelled.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._checkout = threading.local()  # whether this thread's checkout waited

    def begin(self, isolation_level: str | None = None) -> None:
        call = current_call()
        remaining = call.remaining() if call is not None else None
        if remaining is None:
            super().begin(isolation_level)
            return
        check_call_alive()
        level = isolation_level if isolation_level is not None else self._isolation_level
        begin = (
            f"BEGIN TRANSACTION ISOLATION LEVEL {self._adapter.isolation_level_str(level)}"
            if level
            else "BEGIN TRANSACTION"  # not "BEGIN;": statement spans are named by the first word
        )
        milliseconds = min(max(int(remaining * 1000), 1), MAX_STATEMENT_TIMEOUT_MS)
        cursor = self.cursor()  # connects first if needed (and wraps a failure itself)
        with peewee.__exception_wrapper__:
            cursor.execute(f"{begin}; SET LOCAL statement_timeout = {milliseconds}")

    def commit(self) -> None:
        check_call_alive()
        super().commit()

    # Metrics: the pool's connections in use, and the checkouts that had to wait for one.

    def connect(self, reuse_if_open: bool = False) -> Any:
        metrics = active_metrics()
        if metrics is None:
            return super().connect(reuse_if_open)
        self._checkout.waited = False
        try:
            return super().connect(reuse_if_open)
        finally:
            if self._checkout.waited:
                metrics.pool_waits.inc()
            metrics.pool_in_use.set(len(self._in_use))

    def _connect(self) -> Any:
        try:
            return super()._connect()
        except MaxConnectionsExceeded:  # the pool's connect() waits, then tries again
            self._checkout.waited = True
            raise

    def _close(self, conn: Any, close_conn: bool = False) -> None:
        super()._close(conn, close_conn)
        metrics = active_metrics()
        if metrics is not None:
            metrics.pool_in_use.set(len(self._in_use))


class QueuedWriterSqliteDatabase(peewee.SqliteDatabase):
    """SQLite whose write transactions queue on a lock in the process, not in busy_timeout.

    A writer that finds SQLite's lock taken sleeps in the busy handler, by steps of up to
    100 ms, and never sees the lock come free in between: at 16 concurrent writers the
    bench measured p99 latencies 30-50 times the p50. Queued on a threading.Lock, the next
    writer starts the moment the previous one commits. Read transactions (DEFERRED) do not
    queue; other processes (--workers) still meet at busy_timeout.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._writer = threading.Lock()
        self._holder = threading.local()

    def begin(self, lock_type: str | None = None) -> None:
        if (lock_type or self._lock_type or "").upper() == "DEFERRED":
            super().begin(lock_type)
            return
        self._queue()
        self._holder.writing = True
        try:
            super().begin(lock_type)
        except BaseException:
            self._release()
            raise

    def _queue(self) -> None:
        """Wait for the write lock, for a call no longer than its client waits for it.

        A writer queued here past its deadline would hold its thread and its place in the
        calls lane (shared.lanes) until the writer ahead ended, however long that takes (a
        stuck driver hook): on PostgreSQL the statement_timeout ends such a wait. Without a
        deadline a call waits busy_timeout, as a writer of another process does.
        """
        call = current_call()
        if call is None:  # migrations, seeds: nothing waits for them but their operator
            self._writer.acquire()
            return
        remaining = call.remaining()
        if remaining is None:
            remaining = SQLITE_BUSY_TIMEOUT_MS / 1000
        if self._writer.acquire(timeout=min(remaining, threading.TIMEOUT_MAX)):
            return
        check_call_alive()  # DEADLINE_EXCEEDED when that was what ended the wait
        raise sqlite3.OperationalError("database is locked")  # contention, as SQLite says it

    def commit(self) -> None:
        check_call_alive()  # before the lock is released: the caller's rollback still holds it
        try:
            super().commit()
        finally:
            self._release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release()

    def _release(self) -> None:
        if getattr(self._holder, "writing", False):
            self._holder.writing = False
            self._writer.release()


class TracedTransactions:
    """A span per transaction when tracing is on (shared.tracing.TransactionSpan).

    The outermost layer of the databases below, so that the span also times what their own
    begin does first: the SQLite writer's queue, the deadline's check and SET LOCAL. peewee
    begins, commits and rolls back every outermost transaction here (through a
    DatabaseProxy too); nested ones are savepoints, inside their transaction's span.
    """

    SYSTEM = ""  # db.system of the spans

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._traced = threading.local()  # this thread's open transaction span

    def begin(self, *args: Any, **kwargs: Any) -> None:
        tracer = active_tracer()
        if tracer is None:
            super().begin(*args, **kwargs)  # type: ignore[misc]
            return
        opened = TransactionSpan(tracer, self.SYSTEM)
        try:
            super().begin(*args, **kwargs)  # type: ignore[misc]
        except BaseException:  # never begun: no rollback will follow
            opened.end("rollback")
            raise
        self._traced.span = opened

    def commit(self) -> None:
        super().commit()  # type: ignore[misc]  # if it raises, peewee rolls back
        self._end("commit")

    def rollback(self) -> None:
        try:
            super().rollback()  # type: ignore[misc]
        finally:
            self._end("rollback")

    def _end(self, outcome: str) -> None:
        opened = getattr(self._traced, "span", None)
        if opened is not None:
            self._traced.span = None
            opened.end(outcome)


class TracedSqliteDatabase(TracedTransactions, QueuedWriterSqliteDatabase):
    SYSTEM = "sqlite"


class TracedPostgresqlDatabase(TracedTransactions, CallBoundPostgresqlDatabase):
    SYSTEM = "postgresql"


def read_transaction(database: peewee.Database) -> Any:
    """A transaction that only reads: one consistent snapshot, without the write lock.

    Write transactions on SQLite are IMMEDIATE (see SQLITE_PRAGMAS); a read that took the
    write lock too would queue behind every writer for nothing. WAL gives a DEFERRED
    transaction its snapshot at its first read. PostgreSQL's default, READ COMMITTED, gives
    each statement a snapshot of its own: a row read by one statement and its children by
    the next could mix a concurrent write's before and after (a draft's name before a put,
    its datasets after it). REPEATABLE READ keeps the first statement's snapshot; a
    transaction that only reads never fails with a serialization error there.
    """
    target = database.obj if isinstance(database, peewee.DatabaseProxy) else database
    if isinstance(target, peewee.SqliteDatabase):
        return database.atomic(lock_type="DEFERRED")
    return database.atomic(isolation_level="REPEATABLE READ")


def apply_migrations(database: peewee.Database, directory: Path) -> list[str]:
    """Apply the pending playhouse.migrations scripts in directory; return their names."""
    with database.connection_context():
        if isinstance(database, peewee.PostgresqlDatabase):
            # Several workers may start at once; the advisory lock makes them take turns.
            database.execute_sql("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_ID,))
        try:
            applied = Runner(database, directory=str(directory)).up()
        finally:
            if isinstance(database, peewee.PostgresqlDatabase):
                database.execute_sql("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_ID,))
    names: list[str] = applied
    for name in names:
        _LOGGER.info("applied migration %s", name)
    return names
