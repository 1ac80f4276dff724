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
from concurrent import futures
from typing import Any, TypeVar

import grpc

from shared.db import WATCH_READ_CONNECTIONS
from shared.drain import SHUTTING_DOWN
from shared.errors import ResourceExhausted, ServiceError, Unauthenticated, Unavailable
from shared.events import EventStore, StoredEvent, Stream
from shared.metrics import active as active_metrics

_LOGGER = logging.getLogger(__name__)

TOO_MANY_WATCHES = "TOO_MANY_WATCHES"
WATCHER_TOO_SLOW = "WATCHER_TOO_SLOW"
TOKEN_EXPIRED = "TOKEN_EXPIRED"
BATCH = 100  # events read per short transaction; the connection goes back in between
DRAIN_SEND_SECONDS = 0.5  # at the drain, a send pending this long is cancelled
KEEPALIVE_SECONDS = 30.0  # a caught-up watch looks at its token and the drain at least so often
SQLITE_POLL_SECONDS = 0.05
POSTGRES_SAFETY_POLL_SECONDS = 1.0
_RECONNECT_MAX_SECONDS = 5.0

M = TypeVar("M")
T = TypeVar("T")


# ---------------------------------------------------------------------------
# The feed
# ---------------------------------------------------------------------------


class _Topic:
    """A subscribed topic: its subscribers, and the events last read for them.

    Fan-out: a change wakes every watch of its topic at once (a thousand editors of one
    report). Each reading the table would take a thousand connections' turns for one event;
    instead the first reads, under the topic's lock, and the others take what it read. The
    cache answers only while no notification came since its read (`generation`), and only
    for positions it covers; anything else reads the table.
    """

    KEPT = 256  # events kept per topic

    def __init__(self) -> None:
        self.subscribers: set[threading.Event] = set()
        self.lock = threading.Lock()
        self.generation = 0  # notifications seen
        self.read_generation = -1  # the generation the cache was complete at
        self.events: list[StoredEvent] = []  # contiguous seqs, ascending

    def cached_after(self, seq: int, limit: int) -> list[StoredEvent] | None:
        """The events after seq from the cache, or None if it cannot tell."""
        if self.read_generation != self.generation or not self.events:
            return None
        if self.events[0].seq > seq + 1:
            return None
        return [event for event in self.events if event.seq > seq][:limit]

    def remember(self, seq: int, read: list[StoredEvent], limit: int, generation: int) -> None:
        """Keep what a read after seq returned; complete if it was not cut at limit."""
        if self.events and self.events[0].seq <= seq + 1 <= self.events[-1].seq + 1:
            merged = [event for event in self.events if event.seq <= seq] + read
        else:
            merged = list(read)
        self.events = merged[-self.KEPT :]
        self.read_generation = generation if len(read) < limit and self.events else -1


class Feed:
    """Wakes the subscribers of a topic when one of its events commits (any process)."""

    def __init__(
        self, store: EventStore, safety_poll_seconds: float = POSTGRES_SAFETY_POLL_SECONDS
    ) -> None:
        self._store = store
        self._safety_poll_seconds = safety_poll_seconds
        self._topics: dict[str, _Topic] = defaultdict(_Topic)
        # Reads of the event table at once, each on a pooled connection of their own
        # (shared.db.WATCH_READ_CONNECTIONS): watches never take the calls' connections.
        self._readers = futures.ThreadPoolExecutor(WATCH_READ_CONNECTIONS, "watch-read")
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
        self._readers.shutdown(wait=True)
        os.close(self._wakeup_r)
        os.close(self._wakeup_w)

    @contextlib.contextmanager
    def subscribed(self, topic: str, wake: threading.Event) -> Iterator[None]:
        """wake is set whenever an event of topic may have committed, inside the block."""
        with self._lock:
            self._topics[topic].subscribers.add(wake)
        try:
            yield
        finally:
            with self._lock:
                state = self._topics.get(topic)
                if state is not None:
                    state.subscribers.discard(wake)
                    if not state.subscribers:
                        del self._topics[topic]

    def notify(self, topic: str) -> None:
        with self._lock:
            state = self._topics.get(topic)
            if state is None:
                return
            state.generation += 1  # before the wake-ups: the cache is stale from now on
            subscribers = list(state.subscribers)
        for wake in subscribers:
            wake.set()

    def notify_all(self) -> None:
        """After a lost connection: every subscriber reads again (nothing is lost)."""
        for topic in self.topics():
            self.notify(topic)

    def read(self, read: Callable[[], T]) -> T:
        """read() on one of the feed's WATCH_READ_CONNECTIONS reader threads, on a connection
        for it alone (back to the pool after it: a watch lasts hours).

        Not on the watch's own thread: every thread that has run the store's code keeps
        its memory (1,000 idle watches of a process: 104 KiB RSS each on SQLite, 66 on
        PostgreSQL, when each read on its own thread; 59 on both so), and idle watches
        are what a process holds most of.
        """

        def on_a_connection() -> T:
            with self._store.database.connection_context():
                return read()

        # In the caller's context: read() may ask for current_principal() and the like.
        return self._readers.submit(contextvars.copy_context().run, on_a_connection).result()

    def read_after(self, topic: str, seq: int, limit: int) -> list[StoredEvent]:
        """store.read_after for a subscriber of topic: from what another subscriber has just
        read when it can (see _Topic), else from the table."""
        with self._lock:
            state = self._topics[topic]
        with state.lock:
            cached = state.cached_after(seq, limit)
            if cached is not None:
                return cached
            generation = state.generation  # read before the table: a later notify restales
            events = self.read(lambda: self._store.read_after(topic, seq, limit))
            state.remember(seq, events, limit, generation)
            return events

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
            # The driver's connection itself: twenty polls a second are not the service's
            # statements (peewee logs those, and tests count them).
            connection = database.connection()
            last = connection.execute("SELECT COALESCE(MAX(id), 0) FROM event").fetchone()[0]
            self.ready.set()
            while not self._stopping.wait(SQLITE_POLL_SECONDS):
                rows = connection.execute(
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
            next_poll = time.monotonic() + self._safety_poll_seconds
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
                    next_poll = time.monotonic() + self._safety_poll_seconds
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
            counters = dict(cursor.fetchall())
        for topic in set(known) - set(topics):
            del known[topic]
        for topic in topics:
            last = counters.get(topic, 0)  # no row yet: no event yet
            if topic in known and known[topic] != last:
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
        """End the stream with error at its next check; one whose send is still pending
        DRAIN_SEND_SECONDS later is cancelled by the watchdog (a send in progress usually
        completes at once: only then does the client get the status with its details)."""
        self.ending = error
        self.wake.set()

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
        self._closed = threading.Condition(self._lock)
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
                metrics = active_metrics()
                if metrics is not None:
                    metrics.lane_refusals.labels("watches", TOO_MANY_WATCHES).inc()
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
            self._closed.notify_all()
        metrics = active_metrics()
        if metrics is not None:
            metrics.watches_open.dec()
            metrics.watches_ended.labels(outcome).inc()

    @property
    def open_count(self) -> int:
        return len(self._open)

    def end_all(self) -> None:
        """For the drain: every open watch ends UNAVAILABLE (SHUTTING_DOWN) now; returns once
        they have (at most about 2 x DRAIN_SEND_SECONDS: a send that does not complete is
        cancelled by the watchdog), so that their statuses go out before the listener closes."""
        with self._lock:
            self._draining = True
            watches = list(self._open)
        for watch in watches:
            watch.end_with(_shutting_down())
        with self._closed:
            self._closed.wait_for(lambda: not self._open, timeout=2 * DRAIN_SEND_SECONDS)

    def stop(self) -> None:
        self._stopped.set()
        self._watchdog.join()

    def _watch_sends(self) -> None:
        period = min(max(self._send_seconds / 4, 0.05), DRAIN_SEND_SECONDS / 2)
        while not self._stopped.wait(period):
            now = time.monotonic()
            with self._lock:
                sending = [(watch, watch.sending_since) for watch in self._open]
            for watch, since in sending:
                limit = DRAIN_SEND_SECONDS if watch.ending is not None else self._send_seconds
                if watch.cut is not None or since is None or now - since <= limit:
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


def follow(
    store: EventStore,
    stream: Stream,
    start_after: str,
    opening: Callable[[], tuple[int, Iterable[M]]],
    convert: Callable[[StoredEvent, str], M],
    last: Callable[[StoredEvent], bool] = lambda event: False,
    keep: Callable[[StoredEvent], bool] = lambda event: True,
) -> Iterator[M]:
    """The messages of a watch stream, for the servicer to return; runs until it ends.

    Without start_after, opening() reads the current state in one snapshot and returns
    (the topic's position in that snapshot, the opening messages); with it, the stream
    resumes after the cursor (INVALID_ARGUMENT if this stream did not issue it, OUT_OF_RANGE
    if its next event was purged). Then every event of the stream's topic the caller may see
    (StoredEvent.visible_to, checked per event) and keep() accepts (a stream's filter),
    converted with its cursor, in commit order; after an event for which last() is true the
    stream ends with OK.

    opening() and the reads run on the feed's reader threads (Feed.read), in the caller's
    context; the messages are sent from the watch's own thread. The opening messages may be
    a generator that reads more as it is sent (a snapshot too large for one read): it runs
    on the watch's thread, so it reads through Feed.read too (current_watch().watches.feed).
    """
    watch = current_watch()
    feed = watch.watches.feed
    if feed is None:
        raise RuntimeError("the service declares no event store (ServiceDefinition.events)")
    with feed.subscribed(stream.topic, watch.wake):
        if start_after:
            seq = stream.seq_of(start_after)
            feed.read(lambda: store.check_resume(stream.topic, seq))
        else:
            seq, messages = feed.read(opening)
            for message in messages:
                yield from watch.send(message)
        while True:
            watch.wake.clear()  # before the read: an event committed after it wakes the wait
            batch = feed.read_after(stream.topic, seq, BATCH)
            for event in batch:
                seq = event.seq
                if not event.visible_to(watch.principal) or not keep(event):
                    continue
                yield from watch.send(convert(event, stream.cursor(seq)))
                if last(event):
                    return
            if len(batch) < BATCH and not watch.wait():
                return
