"""Helpers for tests: real servers on port 0, real tokens, store snapshots and query counts."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import peewee
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from shared.auth import mint_token
from shared.config import AuthSettings, Settings
from shared.purge import Purger
from shared.server import run_server
from shared.service import ServiceDefinition

TEST_SECRET = "test-secret-" + "x" * 32
TEST_AUTH = AuthSettings(secret=TEST_SECRET)
ALL_PERMISSIONS = ("cohort:read", "cohort:write", "catalog:write", "report:read", "report:write")

# ---------------------------------------------------------------------------
# Servers and credentials
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningService:
    channel: grpc.Channel
    address: str
    database: peewee.Database
    settings: Settings
    purger: Purger  # run_once() purges now, as the service's background thread would


def test_settings(definition: ServiceDefinition, database_url: str, **overrides) -> Settings:
    settings = Settings(
        service=definition.name,
        host="127.0.0.1",
        port=0,
        database_url=database_url,
        dev=False,
        workers=1,
        grace_period=1.0,
        auth=TEST_AUTH,
        # No background purges unless a test asks for them: a purge between two snapshots or
        # inside a query count would be noise (tests of purging set it, or call run_once).
        purge_interval=0.0,
    )
    return dataclasses.replace(settings, **overrides)


@contextlib.contextmanager
def serve(
    definition: ServiceDefinition, database_url: str, **overrides
) -> Iterator[RunningService]:
    """A real server on port 0 with the production interceptor, and a channel to it."""
    settings = test_settings(definition, database_url, **overrides)
    with run_server(definition, settings) as running:
        address = f"127.0.0.1:{running.port}"
        with grpc.insecure_channel(address) as channel:
            yield RunningService(channel, address, running.database, settings, running.purger)


DAY = 86_400.0


def days_ahead(
    definition: ServiceDefinition, database_url: str
) -> Callable[..., contextlib.AbstractContextManager[RunningService]]:
    """serving(days, **overrides): definition served on database_url with its clock `days`
    ahead (the test-only clock_offset setting), so that it believes the days have passed."""

    @contextlib.contextmanager
    def serving(days: float = 0.0, **overrides) -> Iterator[RunningService]:
        with serve(definition, database_url, clock_offset=days * DAY, **overrides) as running:
            yield running

    return serving


@contextlib.contextmanager
def bare_server(add: Callable[[Any, grpc.Server], None], servicer: Any) -> Iterator[str]:
    """servicer on a plain grpc server on port 0 (no platform interceptor): a stand-in for a
    service, or another party a service calls; its address."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def bearer(
    sub: str = "user:alice",
    permissions: tuple[str, ...] | list[str] = ALL_PERMISSIONS,
    *,
    auth: AuthSettings = TEST_AUTH,
    ttl_seconds: int = 600,
) -> list[tuple[str, str]]:
    """Call metadata carrying a valid token for sub."""
    token = mint_token(auth, sub, permissions, ttl_seconds=ttl_seconds)
    return [("authorization", f"Bearer {token}")]


# ---------------------------------------------------------------------------
# Store assertions
# ---------------------------------------------------------------------------


class _QueryCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self.statements: list[str] = []
        self.queries: list[tuple[str, tuple]] = []  # (sql, params), to run EXPLAIN on
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name != "peewee":  # peewee.pool logs new connections: not statements
            return
        with self._lock:
            self.count += 1
            self.statements.append(record.getMessage())
            if isinstance(record.msg, tuple) and len(record.msg) == 2:
                self.queries.append((record.msg[0], tuple(record.msg[1] or ())))


@contextlib.contextmanager
def count_queries(database: peewee.Database | None = None) -> Iterator[_QueryCounter]:
    """Count the SQL statements peewee issues (in any thread) inside the block."""
    counter = _QueryCounter()
    with _listening("peewee", counter, logging.DEBUG):
        yield counter


class LogWatcher(logging.Handler):
    """The messages one logger emitted (from any thread), and a way to wait for one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.messages.append(record.getMessage())
            self._changed.notify_all()

    def matching(self, *parts: str) -> list[str]:
        with self._changed:
            return [m for m in self.messages if all(part in m for part in parts)]

    def wait_for(self, *parts: str, timeout: float = 30.0) -> str:
        """The first message containing every part; AssertionError if none came in time."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.matching(*parts), timeout=timeout):
                raise AssertionError(f"no log message with {parts} in {timeout}s: {self.messages}")
            return self.matching(*parts)[0]


@contextlib.contextmanager
def watch_log(name: str, level: int = logging.INFO) -> Iterator[LogWatcher]:
    """Collect what logger `name` logs at level and above inside the block.

    `watch_log("shared.access")` sees each call's line when its handler has returned, which is
    how a test learns that a call the client gave up on has finished on the server.
    """
    watcher = LogWatcher()
    watcher.setLevel(level)
    with _listening(name, watcher, level):
        yield watcher


@contextlib.contextmanager
def _listening(name: str, handler: logging.Handler, level: int) -> Iterator[None]:
    """handler attached to logger `name` for the block, the logger letting level through."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(min(level, previous or level))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def snapshot(database: peewee.Database) -> dict[str, list[tuple]]:
    """Every row of every table, sorted: equal snapshots mean nothing changed."""
    schema = None
    if isinstance(database, peewee.PostgresqlDatabase):
        schema = database.execute_sql("SELECT current_schema()").fetchone()[0]
    tables = database.get_tables(schema=schema) if schema else database.get_tables()
    result = {}
    for table in tables:
        rows = database.execute_sql(f'SELECT * FROM "{table}"').fetchall()
        result[table] = sorted((tuple(row) for row in rows), key=repr)
    return result


# The event store's tables (shared.events): a write that leaves the state as it was (a draft
# made and discarded) still appends events; sqlite_sequence holds the event ids' AUTOINCREMENT.
EVENT_TABLES = frozenset({"event", "event_topic", "sqlite_sequence"})


def without_events(tables: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """A snapshot without the event store's tables."""
    return {name: rows for name, rows in tables.items() if name not in EVENT_TABLES}


# ---------------------------------------------------------------------------
# Error details
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """What a failed call told the client: code, message, ErrorInfo and BadRequest details."""

    code: grpc.StatusCode
    message: str
    reason: str
    domain: str
    metadata: dict[str, str]
    violations: list[tuple[str, str]]

    @property
    def fields(self) -> list[str]:
        return [field for field, _ in self.violations]


def failure(error: grpc.RpcError) -> Failure:
    """The failure's parts; every test that decodes one also checks its message names the
    first violation (a person reading `buf curl` output sees no decoded details)."""
    status = rpc_status.from_call(error)
    info, bad_request = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    for detail in status.details:
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(bad_request.DESCRIPTOR):
            detail.Unpack(bad_request)
    violations = [(v.field, v.description) for v in bad_request.field_violations]
    if violations:
        assert_summarised(status.message, violations)
    return Failure(
        code=error.code(),
        message=status.message,
        reason=info.reason,
        domain=info.domain,
        metadata=dict(info.metadata),
        violations=violations,
    )


def assert_summarised(message: str, violations: list[tuple[str, str]]) -> None:
    """The message names the first violation (its start: long texts are shortened)."""
    field, text = violations[0]
    assert field[:30] in message and text[:30] in message, (message, violations[0])
