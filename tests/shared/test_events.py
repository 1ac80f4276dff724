"""The event store and its feed (shared.events, shared.watch.Feed) on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import peewee
import pytest

from shared.clock import utcnow
from shared.db import open_database
from shared.errors import InvalidArgument, OutOfRange
from shared.events import EVENT_EXPIRED, EventStore, NewEvent, Stream, create_tables
from shared.watch import Feed


@pytest.fixture
def store(database_url) -> Iterator[EventStore]:
    proxy = peewee.DatabaseProxy()
    database = open_database(database_url)
    proxy.initialize(database)
    with database.connection_context():
        create_tables(database)
    yield EventStore(proxy, "test_events")
    database.close_all() if hasattr(database, "close_all") else database.close()


@contextlib.contextmanager
def _running(store: EventStore, **settings: float) -> Iterator[Feed]:
    """A started feed of store, listening (or polling) before the block, stopped after it."""
    feed = Feed(store, **settings)
    feed.start()
    assert feed.ready.wait(10)
    try:
        yield feed
    finally:
        feed.stop()


def _append(store: EventStore, topic: str, *events: NewEvent) -> int:
    with store.database.connection_context(), store.database.atomic():
        return store.append(topic, *events)


def test_topics_number_their_events_from_one_without_gaps(store):
    assert _append(store, "a", NewEvent(1, "x"), NewEvent(2, "x", actor_id="u")) == 2
    assert _append(store, "b", NewEvent(1, "y", state=b"\x00\xff")) == 1
    assert _append(store, "a", NewEvent(3, "x", owner_id="u")) == 3
    with store.database.connection_context():
        events = store.read_after("a", 0, 10)
        assert [(e.seq, e.type, e.owner_id) for e in events] == [
            (1, 1, ""),
            (2, 2, ""),
            (3, 3, "u"),
        ]
        assert store.read_after("b", 0, 10)[0].state == b"\x00\xff"
        assert [e.seq for e in store.read_after("a", 1, 1)] == [2]
        assert store.position("a") == 3
        assert store.position("never") == 0


def test_an_append_that_rolls_back_leaves_no_event_and_no_number(store):
    _append(store, "a", NewEvent(1, "x"))
    with store.database.connection_context():
        with pytest.raises(RuntimeError), store.database.atomic():
            store.append("a", NewEvent(2, "x"))
            raise RuntimeError("the write failed after its event")
        assert store.position("a") == 1
    assert _append(store, "a", NewEvent(3, "x")) == 2


def test_resuming_is_refused_past_the_last_event_and_after_a_purged_one(store):
    for _ in range(3):
        _append(store, "a", NewEvent(1, "x"))
    with store.database.connection_context():
        store.check_resume("a", 3)
        store.check_resume("a", 0)
        with pytest.raises(InvalidArgument) as caught:
            store.check_resume("a", 4)
        assert caught.value.violations[0][0] == "start_after"
        # Everything older than a day is purged; the counter is kept.
        assert store.purge(utcnow() + timedelta(days=2), 86_400, 2) == 2
        with pytest.raises(OutOfRange) as expired:
            store.check_resume("a", 0)
        assert expired.value.reason == EVENT_EXPIRED
        with pytest.raises(OutOfRange):
            store.read_after("a", 0, 10)
        store.check_resume("a", 2)  # its next event is still kept
        assert [e.seq for e in store.read_after("a", 2, 10)] == [3]
    assert _append(store, "a", NewEvent(1, "x")) == 4


def test_cursors_name_their_stream_and_sort_as_events_do():
    stream = Stream("report:r1")
    assert stream.seq_of(stream.cursor(42)) == 42
    assert sorted([stream.cursor(10), stream.cursor(9)]) == [stream.cursor(9), stream.cursor(10)]
    for foreign in (Stream("report:r2").cursor(42), Stream("report:r1", "x").cursor(42), "", "zz"):
        with pytest.raises(InvalidArgument):
            stream.seq_of(foreign)


def test_the_feed_wakes_a_topics_subscribers_when_its_event_commits(store):
    with _running(store) as feed:
        woken, other = threading.Event(), threading.Event()
        with feed.subscribed("a", woken), feed.subscribed("b", other):
            woken.clear()
            other.clear()
            _append(store, "a", NewEvent(1, "x"))
            assert woken.wait(10)
            assert not other.is_set()


def test_the_feed_wakes_nobody_for_an_append_that_rolled_back(store):
    with _running(store) as feed:
        woken = threading.Event()
        with feed.subscribed("a", woken):
            woken.clear()
            with (
                store.database.connection_context(),
                pytest.raises(RuntimeError),
                store.database.atomic(),
            ):
                store.append("a", NewEvent(1, "x"))
                raise RuntimeError("rolled back")
            # The next commit of another topic is seen (the feed is alive), this one never.
            seen = threading.Event()
            with feed.subscribed("b", seen):
                _append(store, "b", NewEvent(1, "y"))
                assert seen.wait(10)
            assert not woken.is_set()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_on_postgresql_the_notification_wakes_a_subscriber_without_the_safety_poll(store):
    with _running(store, safety_poll_seconds=3600) as feed:
        woken = threading.Event()
        with feed.subscribed("a", woken):
            woken.clear()
            _append(store, "a", NewEvent(1, "x"))
            assert woken.wait(10)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_on_postgresql_the_safety_poll_wakes_a_subscriber_whose_notification_was_lost(store):
    with _running(store, safety_poll_seconds=0.1) as feed:
        woken = threading.Event()
        with feed.subscribed("a", woken):
            time.sleep(0.3)  # a poll has seen the topic's counter
            woken.clear()
            # Appended through a store whose notifications go to another channel: lost.
            _append(EventStore(store.database, "elsewhere"), "a", NewEvent(1, "x"))
            assert woken.wait(10)
