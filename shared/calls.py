"""Each RPC's hold on the store: a pooled connection, its deadline, and bounded retries.

The interceptor runs every handler through `run_call`, so that the servicers stay plain:

- Connection per call. On PostgreSQL the call's pooled connection goes back to the pool when
  the call ends. Check-in drops a connection whose link broke (peewee's pool asks libpq for
  the transaction status, which is UNKNOWN once the server is gone), and check-out pings an
  idle one (`SELECT 1`) and drops it if the ping fails. So after a database restart, or a
  terminated backend, the next call gets a fresh connection and the service recovers by
  itself; a connection held by a thread for its lifetime would fail that thread's calls
  forever. SQLite keeps its per-thread connections: a local file has no link to lose.
- Deadline. grpc's sync server keeps running a handler after the client's deadline passed
  (or the client cancelled), and a late COMMIT would apply a write the client was told
  failed. The call is bound in a context variable that the store consults before COMMIT
  (see shared/db.py) and when a PostgreSQL transaction begins (its statement_timeout).
- Retries. Every RPC is one transaction, so after a rollback the handler can run again as
  if it had not run. Only failures that say the transaction did not commit are retried:
  serialization failure, deadlock, lock timeout, SQLite's "database is locked". A lost
  connection is never retried here: a COMMIT may have reached the server, and only the
  client (with its idempotency key, or by reading back) can tell.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc
import peewee
from playhouse.pool import PooledDatabase

from shared.errors import DeadlineExceeded, database_failure, driver_error
from shared.metrics import active as active_metrics
from shared.tracing import event as trace_event

_LOGGER = logging.getLogger(__name__)

ATTEMPTS = 3  # runs of one call's transaction at most: the first and two retries
_BACKOFF_SECONDS = 0.02  # doubled per retry, with full jitter
# grpc reports "no deadline" as a deadline far in the future.
_NO_DEADLINE_SECONDS = 10**8

T = TypeVar("T")


class CallLife:
    """Whether the client still waits for the call, and for how long."""

    def __init__(self, context: grpc.ServicerContext) -> None:
        self._context = context
        remaining = context.time_remaining()
        self._deadline = (
            None
            if remaining is None or remaining > _NO_DEADLINE_SECONDS
            else time.monotonic() + remaining
        )

    def remaining(self) -> float | None:
        """Seconds left before the client's deadline; None when it set none."""
        if self._deadline is None:
            return None
        return max(self._deadline - time.monotonic(), 0.0)

    def ended(self) -> bool:
        """True once the deadline passed or the client cancelled the call."""
        remaining = self.remaining()
        return (remaining is not None and remaining <= 0) or not self._context.is_active()


_CALL: contextvars.ContextVar[CallLife | None] = contextvars.ContextVar("call", default=None)


def current_call() -> CallLife | None:
    """The RPC this thread is serving, if any (None in migrations, seeds and tests' threads)."""
    return _CALL.get()


def check_call_alive() -> None:
    """Raise DeadlineExceeded when the current call's client no longer waits for it.

    Called by the store before COMMIT: what is not committed yet is rolled back instead.
    """
    call = _CALL.get()
    if call is not None and call.ended():
        raise DeadlineExceeded(
            "the call's deadline passed or it was cancelled before its changes were "
            "committed; nothing was changed",
            reason="DEADLINE_EXCEEDED",
        )


def run_call(
    database: peewee.Database | None, context: grpc.ServicerContext, call: Callable[[], T]
) -> T:
    """call(), bound to context's deadline, on a connection of its own, retried on contention."""
    token = _CALL.set(CallLife(context))
    try:
        with _connection_per_call(database):
            return _with_retries(call)
    finally:
        _CALL.reset(token)


@contextlib.contextmanager
def _connection_per_call(database: peewee.Database | None) -> Iterator[None]:
    target = database.obj if isinstance(database, peewee.DatabaseProxy) else database
    try:
        yield
    finally:
        # The handler connected on first use (autoconnect); give that connection back.
        if isinstance(target, PooledDatabase) and not target.is_closed():
            target.close()


def _with_retries(call: Callable[[], T]) -> T:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return call()
        except Exception as exc:
            if database_failure(exc) != "contention":
                raise
            metrics = active_metrics()
            pause = random.uniform(0, _BACKOFF_SECONDS * 2 ** (attempt - 1))
            life = current_call()
            remaining = life.remaining() if life is not None else None
            if (
                attempt == ATTEMPTS
                or (life is not None and life.ended())
                or (remaining is not None and remaining < pause)
            ):
                if metrics is not None:
                    metrics.contention_aborts.inc()
                raise
            if metrics is not None:
                metrics.transaction_retries.inc()
            error = type(driver_error(exc)).__name__
            _LOGGER.warning(
                "retrying the call's transaction after contention (attempt %d of %d failed: %s)",
                attempt,
                ATTEMPTS,
                error,
            )
            # On the call's server span, between the failed attempt's transaction span and
            # the next one's.
            trace_event(
                "transaction retry",
                {"attempt": attempt, "error.type": error, "backoff_seconds": round(pause, 4)},
            )
            time.sleep(pause)
    raise AssertionError("unreachable")
