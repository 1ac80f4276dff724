"""Watch streams: the feed that wakes them, their limits and endings, and the loop they run.

Server model (issue 11): grpc's sync server, as for every call. An open watch holds one
thread of the `watches` lane (shared.lanes) and sleeps on a threading.Event while caught up:
no CPU, about 50 KB of RSS with its thread. Calls and health Checks have lanes of their own,
so watches never take their threads.

- `Feed`: one per process and service database; wakes the watches of a topic when an event
  of it commits, in this process or any other: on PostgreSQL through LISTEN/NOTIFY (shared
  .events sends one at each commit), with a slow safety poll, so that a lost notification
  or connection delays a watch and never loses an event (the events are re-read from the
  table); on SQLite by polling the event ids, which there are in commit order.
- `Watches`: one per server; the per-principal limit, the drain (every open watch ends
  UNAVAILABLE at once), and the cut-off of a client that stops reading (below).
- `follow`: the loop a servicer's Watch method returns, see its docstring.

A client that stops reading: grpc's send blocks the handler's thread once HTTP/2 flow
control is exhausted, so nothing is buffered without bound. A watch whose send has been
blocked longer than Limits.watch_send_seconds is cancelled by the watchdog thread with
RESOURCE_EXHAUSTED. That status goes out through grpc's cancel-with-status (RST_STREAM with
trailers: the data queue is full), which carries a code and a message but no
google.rpc.Status details: the reason `WATCHER_TOO_SLOW` is in the message only. The same
path ends a blocked watch at the drain, with UNAVAILABLE.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import select
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import grpc
import peewee

from shared.drain import SHUTTING_DOWN
from shared.errors import ResourceExhausted, ServiceError, Unauthenticated, Unavailable
from shared.events import EventStore, StoredEvent, Stream
from shared.metrics import active as active_metrics

_LOGGER = logging.getLogger(__name__)

TOO_MANY_WATCHES = "TOO_MANY_WATCHES"
WATCHER_TOO_SLOW = "WATCHER_TOO_SLOW"
TOKEN_EXPIRED = "TOKEN_EXPIRED"
BATCH = 100  # events read per short transaction; the connection goes back in between
KEEPALIVE_SECONDS = 30.0  # a caught-up watch looks at its token and the drain at least so often
SQLITE_POLL_SECONDS = 0.05
POSTGRES_SAFETY_POLL_SECONDS = 1.0
_RECONNECT_MAX_SECONDS = 5.0

M = TypeVar("M")


# ---------------------------------------------------------------------------
# The feed
# ---------------------------------------------------------------------------


class Feed:
    """Wakes the subscribers of a topic when one of its events commits (any process)."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._topics: dict[str, set[threading.Event]] = defaultdict(set)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wakeup_r, self._wakeup_w = os.pipe()  # ends the listener's select() at stop
        self._thread = threading.Thread(target=self._run, name="event-feed", daemon=True)
        self.ready = threading.Event()  # set once it listens (or polls): for tests

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        os.write(self._wakeup_w, b"x")
        if self._thread.is_alive():
            self._thread.join()
        os.close(self._wakeup_r)
        os.close(self._wakeup_w)

    @contextlib.contextmanager
    def subscribed(self, topic: str, wake: threading.Event) -> Iterator[None]:
        """wake is set whenever an event of topic may have committed, inside the block."""
        with self._lock:
            self._topics[topic].add(wake)
        try:
            yield
        finally:
            with self._lock:
                subscribers = self._topics.get(topic)
                if subscribers is not None:
                    subscribers.discard(wake)
                    if not subscribers:
                        del self._topics[topic]

    def notify(self, topic: str) -> None:
        with self._lock:
            subscribers = list(self._topics.get(topic, ()))
        for wake in subscribers:
            wake.set()

    def notify_all(self) -> None:
        """After a lost connection: every subscriber reads again (nothing is lost)."""
        with self._lock:
            subscribers = [wake for wakes in self._topics.values() for wake in wakes]
        for wake in subscribers:
            wake.set()

    def topics(self) -> list[str]:
        with self._lock:
            return list(self._topics)

    def _run(self) -> None:
        run = self._listen if self._store.postgres else self._poll
        pause = 0.1
        while not self._stopping.is_set():
            try:
                run()
            except Exception as exc:  # the database went away: try again, then wake everyone
                _LOGGER.warning("event feed lost its database (%s: %s)", type(exc).__name__, exc)
                if self._stopping.wait(pause):
                    return
                pause = min(pause * 2, _RECONNECT_MAX_SECONDS)
                self.notify_all()
            else:
                return

    def _poll(self) -> None:
        """SQLite: events by id (in commit order: one writer at a time, any process)."""
        database = self._store.database
        with database.connection_context():
            last = self._store.newest_id()
            self.ready.set()
            while not self._stopping.wait(SQLITE_POLL_SECONDS):
                rows = database.execute_sql(
                    "SELECT id, topic FROM event WHERE id > ? ORDER BY id", (last,)
                ).fetchall()
                for topic in {topic for _, topic in rows}:
                    self.notify(topic)
                if rows:
                    last = rows[-1][0]

    def _listen(self) -> None:
        """PostgreSQL: LISTEN on a connection of its own, and a safety poll of the counters."""
        import psycopg2
        import psycopg2.extensions

        database = self._store.database.obj
        connection = psycopg2.connect(dbname=database.database, **database.connect_params)
        try:
            connection.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_schema()")
                channel = self._store.channel + cursor.fetchone()[0]
                cursor.execute(f'LISTEN "{channel.replace(chr(34), chr(34) * 2)}"')
            self.notify_all()  # anything committed while it was not listening
            self.ready.set()
            known: dict[str, int] = {}
            next_poll = time.monotonic() + POSTGRES_SAFETY_POLL_SECONDS
            while not self._stopping.is_set():
                timeout = max(next_poll - time.monotonic(), 0)
                readable, _, _ = select.select([connection, self._wakeup_r], [], [], timeout)
                if connection in readable:
                    connection.poll()
                    topics = set()
                    while connection.notifies:
                        topic, _, _ = connection.notifies.pop(0).payload.rpartition(" ")
                        topics.add(topic)
                    for topic in topics:
                        self.notify(topic)
                if time.monotonic() >= next_poll:
                    self._safety_poll(connection, known)
                    next_poll = time.monotonic() + POSTGRES_SAFETY_POLL_SECONDS
        finally:
            connection.close()

    def _safety_poll(self, connection: Any, known: dict[str, int]) -> None:
        """Wake the topics whose counter moved since the last poll (a NOTIFY went missing)."""
        topics = self.topics()
        if not topics:
            known.clear()
            return
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT topic, last_seq FROM event_topic WHERE topic = ANY(%s)", (topics,)
            )
            for topic, last in cursor.fetchall():
                if known.get(topic, last) != last:
                    self.notify(topic)
                known[topic] = last


# ---------------------------------------------------------------------------
# Open watches
# ---------------------------------------------------------------------------


class OpenWatch:
    """One open watch stream: why it must end, if it must, and whether it is sending."""

    def __init__(
        self, watches: Watches, context: grpc.ServicerContext, principal: str, expires: float
    ) -> None:
        self.watches = watches
        self.context = context
        self.principal = principal
        self.expires = expires
        self.wake = threading.Event()
        self.ending: ServiceError | None = None  # set by the drain
        self.cut: ServiceError | None = None  # ended by cancel-with-status (see module)
        self.gone = False  # the client left (or the call was cancelled)
        self.sending_since: float | None = None
        context.add_callback(self._left)

    def _left(self) -> None:
        self.gone = True
        self.wake.set()

    def check(self) -> None:
        """Raise what ends the stream now: the drain, or the token's expiry."""
        if self.ending is not None:
            raise self.ending
        if time.time() >= self.expires:
            raise Unauthenticated(
                "the bearer token expired while the stream was open; open a new stream with "
                "a fresh token (start_after resumes it)",
                reason=TOKEN_EXPIRED,
            )

    def wait(self) -> bool:
        """Sleep until woken (an event, the drain, the client leaving) or the token expires;
        raise what ends the stream; False once the client has left."""
        while not self.gone:
            timeout = min(KEEPALIVE_SECONDS, self.expires - time.time())
            if self.wake.wait(max(timeout, 0.0)):
                break
            self.check()
        self.check()
        return not self.gone

    def send(self, message: M) -> Iterator[M]:
        """Yield message to grpc, timed for the watchdog (grpc resumes us once it is sent)."""
        self.check()
        self.sending_since = time.monotonic()
        try:
            yield message
        finally:
            self.sending_since = None
        metrics = active_metrics()
        if metrics is not None:
            metrics.watch_events.inc()

    def end_with(self, error: ServiceError) -> None:
        """End the stream with error: at its next check, or now if it is blocked sending."""
        self.ending = error
        self.wake.set()
        if self.sending_since is not None:
            self.cancel_with(error)

    def cancel_with(self, error: ServiceError) -> None:
        """Cancel the call so that the client sees error's code and message (no details)."""
        self.cut = error
        message = f"{error.message} (reason {error.reason})"
        call = getattr(getattr(self.context, "_rpc_event", None), "call", None)
        if call is None:  # grpc's internals changed: the client sees CANCELLED instead
            self.context.cancel()
            return
        # grpc's cancel-with-status (grpc_call_cancel_with_status), private in Python.
        call.cancel(error.code.value[0], message)


class Watches:
    """The open watches of one server: admission per principal, drain, slow-consumer cut-off."""

    def __init__(self, per_principal: int, send_seconds: float, feed: Feed | None) -> None:
        self.feed = feed
        self._per_principal = per_principal
        self._send_seconds = send_seconds
        self._open: set[OpenWatch] = set()
        self._by_principal: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._draining = False
        self._stopped = threading.Event()
        self._watchdog = threading.Thread(target=self._watch_sends, name="watchdog", daemon=True)
        self._watchdog.start()

    def open(self, context: grpc.ServicerContext, principal: Any) -> OpenWatch:
        """Admit a watch of principal (shared.auth.Principal); RESOURCE_EXHAUSTED
        (TOO_MANY_WATCHES) past the per-principal limit, UNAVAILABLE while draining."""
        with self._lock:
            if self._draining:
                raise _shutting_down()
            if self._by_principal[principal.subject] >= self._per_principal:
                raise ResourceExhausted(
                    f"you have {self._per_principal} watch streams open on this server, its "
                    "limit per principal; close one first",
                    reason=TOO_MANY_WATCHES,
                    metadata={"limit": str(self._per_principal)},
                )
            watch = OpenWatch(self, context, principal.subject, principal.expires)
            self._open.add(watch)
            self._by_principal[principal.subject] += 1
        metrics = active_metrics()
        if metrics is not None:
            metrics.watches_open.inc()
        return watch

    def close(self, watch: OpenWatch, outcome: str) -> None:
        with self._lock:
            if watch not in self._open:
                return
            self._open.discard(watch)
            self._by_principal[watch.principal] -= 1
            if not self._by_principal[watch.principal]:
                del self._by_principal[watch.principal]
        metrics = active_metrics()
        if metrics is not None:
            metrics.watches_open.dec()
            metrics.watches_ended.labels(outcome).inc()

    @property
    def open_count(self) -> int:
        return len(self._open)

    def end_all(self) -> None:
        """For the drain: every open watch ends UNAVAILABLE (SHUTTING_DOWN) now."""
        with self._lock:
            self._draining = True
            watches = list(self._open)
        for watch in watches:
            watch.end_with(_shutting_down())

    def stop(self) -> None:
        self._stopped.set()
        self._watchdog.join()

    def _watch_sends(self) -> None:
        period = min(max(self._send_seconds / 4, 0.05), 1.0)
        while not self._stopped.wait(period):
            now = time.monotonic()
            with self._lock:
                sending = [(watch, watch.sending_since) for watch in self._open]
            for watch, since in sending:
                if watch.cut is not None or since is None or now - since <= self._send_seconds:
                    continue
                _LOGGER.info("cutting off a watch whose client has not read for %.1fs", now - since)
                watch.cancel_with(
                    watch.ending
                    or ResourceExhausted(
                        "the stream was ended: its client read more slowly than events "
                        "arrived; resume with start_after",
                        reason=WATCHER_TOO_SLOW,
                    )
                )


def _shutting_down() -> Unavailable:
    return Unavailable(
        "the server is shutting down; watch again on another instance (start_after resumes)",
        reason=SHUTTING_DOWN,
    )


_WATCH: contextvars.ContextVar[OpenWatch | None] = contextvars.ContextVar("watch", default=None)


def current_watch() -> OpenWatch:
    watch = _WATCH.get()
    if watch is None:
        raise RuntimeError("no open watch: the interceptor opens one for each watch stream")
    return watch


def bind_watch(watch: OpenWatch) -> contextvars.Token[OpenWatch | None]:
    return _WATCH.set(watch)


def unbind_watch(token: contextvars.Token[OpenWatch | None]) -> None:
    _WATCH.reset(token)


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def reading(database: peewee.DatabaseProxy) -> Iterator[None]:
    """A connection for one short read, back to the pool after it (a watch lasts hours)."""
    with database.connection_context():
        yield


def follow(
    store: EventStore,
    stream: Stream,
    start_after: str,
    opening: Callable[[], tuple[int, Iterable[M]]],
    convert: Callable[[StoredEvent, str], M],
    last: Callable[[StoredEvent], bool] = lambda event: False,
) -> Iterator[M]:
    """The messages of a watch stream, for the servicer to return; runs until it ends.

    Without start_after, opening() reads the current state in one snapshot and returns
    (the topic's position in that snapshot, the opening messages); with it, the stream
    resumes after the cursor (INVALID_ARGUMENT if this stream did not issue it, OUT_OF_RANGE
    if its next event was purged). Then every event of the stream's topic the caller may see
    (StoredEvent.visible_to, checked per event), converted with its cursor, in commit order;
    after an event for which last() is true the stream ends with OK.
    """
    watch = current_watch()
    feed = watch.watches.feed
    if feed is None:
        raise RuntimeError("the service declares no event store (ServiceDefinition.events)")
    with feed.subscribed(stream.topic, watch.wake):
        if start_after:
            seq = stream.seq_of(start_after)
            with reading(store.database):
                store.check_resume(stream.topic, seq)
        else:
            with reading(store.database):
                seq, messages = opening()
                messages = list(messages)
            for message in messages:
                yield from watch.send(message)
        while True:
            watch.wake.clear()  # before the read: an event committed after it wakes the wait
            with reading(store.database):
                batch = store.read_after(stream.topic, seq, BATCH)
            for event in batch:
                seq = event.seq
                if not event.visible_to(watch.principal):
                    continue
                yield from watch.send(convert(event, stream.cursor(seq)))
                if last(event):
                    return
            if len(batch) < BATCH and not watch.wait():
                return
