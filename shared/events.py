"""The event store of a service database: what changed, in commit order per topic, kept a while.

A write appends its events in its own transaction (`EventStore.append`, the last statement
before COMMIT), so a change that rolls back leaves no event and a committed one never loses
its event. Watch streams (shared.watch) read them back after a cursor.

Order. Each event has a topic (what a stream follows: `report:<id>`, ...) and a sequence
number within it, taken from a counter row per topic (`event_topic`), not from the id: on
PostgreSQL ids are handed out at insert, not at commit, so a reader could see id 11 before
id 10 commits and pass 10 by. The counter row stays locked until the writer commits, so a
topic's events commit in sequence order, without gaps (a rolled-back write rolls its number
back too). Hence: append once per transaction, as its last statement (the lock is then held
only up to the commit), and to one topic (no two writers can wait on each other's counters);
a transaction that must append to several (a purge) appends in topic order.

Wake-up. On PostgreSQL `append` also sends `pg_notify(<channel>, '<topic> <seq>')`, which
the database delivers at commit and never for a rolled-back transaction; on SQLite the feed
polls the ids (shared.watch).

Cursors. A stream hands out positions as opaque `event_id`s: the sequence number and a short
hash of the stream (topic and filter), so that the cursor of another stream is refused
rather than misread; within a stream they sort as the events do.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee

from shared.clock import utcnow
from shared.errors import InvalidArgument, OutOfRange
from shared.purge import Purge

EVENT_EXPIRED = "EVENT_EXPIRED"
INVALID_CURSOR = "INVALID_CURSOR"


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------

# The schema, for each service's migration to create (frozen: change it by a new migration,
# never here). SQLite's AUTOINCREMENT never reuses an id once the purge emptied the table:
# the SQLite feed follows the ids.
_TABLES = {
    "sqlite": (
        "CREATE TABLE event (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
        "seq INTEGER NOT NULL, type INTEGER NOT NULL, resource_id TEXT NOT NULL, "
        "actor_id TEXT NOT NULL, owner_id TEXT NOT NULL, create_time DATETIME NOT NULL, "
        "state BLOB)",
        "CREATE TABLE event_topic (topic TEXT PRIMARY KEY, last_seq INTEGER NOT NULL)",
    ),
    "postgresql": (
        "CREATE TABLE event (id BIGSERIAL PRIMARY KEY, topic TEXT NOT NULL, "
        "seq BIGINT NOT NULL, type INTEGER NOT NULL, resource_id TEXT NOT NULL, "
        "actor_id TEXT NOT NULL, owner_id TEXT NOT NULL, create_time TIMESTAMP NOT NULL, "
        "state BYTEA)",
        "CREATE TABLE event_topic (topic TEXT PRIMARY KEY, last_seq BIGINT NOT NULL)",
    ),
}
_INDEXES = (
    "CREATE UNIQUE INDEX event_topic_seq ON event (topic, seq)",
    "CREATE INDEX event_create_time ON event (create_time)",  # the retention purge
)


def create_tables(db: peewee.Database) -> None:
    """Create `event` and `event_topic` (for a service's migration)."""
    engine = "postgresql" if isinstance(db, peewee.PostgresqlDatabase) else "sqlite"
    for statement in (*_TABLES[engine], *_INDEXES):
        db.execute_sql(statement)


@dataclass(frozen=True)
class NewEvent:
    """An event to append: what happened to which resource, who did it, who may see it."""

    type: int  # the service's event type enum value
    resource_id: str
    actor_id: str = ""  # "" when the service itself made the change (a purge)
    owner_id: str = ""  # "" every reader of the topic; else the only principal who sees it
    state: bytes | None = None  # the resource's serialized message after the change


@dataclass(frozen=True)
class StoredEvent:
    topic: str
    seq: int
    type: int
    resource_id: str
    actor_id: str
    owner_id: str
    create_time: datetime
    state: bytes | None

    def visible_to(self, principal: str) -> bool:
        """The per-event authorization of every watch: only its owner sees an owned event."""
        return self.owner_id in ("", principal)


_COLUMNS = "topic, seq, type, resource_id, actor_id, owner_id, create_time, state"


class EventStore:
    """One service database's events; `channel` names its PostgreSQL notifications."""

    def __init__(self, database: peewee.DatabaseProxy, channel: str) -> None:
        self.database = database
        self.channel = channel

    @property
    def postgres(self) -> bool:
        target = self.database.obj if isinstance(self.database, peewee.DatabaseProxy) else None
        return isinstance(target, peewee.PostgresqlDatabase)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    # ------------------------------------------------------------------ writing

    def append(self, topic: str, *events: NewEvent) -> int:
        """Append events to topic in the caller's transaction; return the last one's seq.

        Call it last in the transaction (see the module docstring).
        """
        if not events:
            raise ValueError("append needs at least one event")
        count = len(events)
        last = self.database.execute_sql(
            self._sql(
                "INSERT INTO event_topic (topic, last_seq) VALUES (?, ?) ON CONFLICT (topic) "
                "DO UPDATE SET last_seq = event_topic.last_seq + ? RETURNING last_seq"
            ),
            (topic, count, count),
        ).fetchone()[0]
        now = utcnow()
        rows: list[Any] = []
        for offset, event in enumerate(events):
            state = event.state
            if state is not None and self.postgres:
                state = _binary(state)
            rows.extend(
                (
                    topic,
                    last - count + 1 + offset,
                    event.type,
                    event.resource_id,
                    event.actor_id,
                    event.owner_id,
                    now,
                    state,
                )
            )
        placeholders = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * count)
        self.database.execute_sql(
            self._sql(f"INSERT INTO event ({_COLUMNS}) VALUES {placeholders}"), tuple(rows)
        )
        if self.postgres:
            # current_schema(): tests share one database, a schema each (so may deployments).
            self.database.execute_sql(
                "SELECT pg_notify(%s || current_schema(), %s)",
                (self.channel, f"{topic} {last}"),
            )
        return int(last)

    # ------------------------------------------------------------------ reading

    def position(self, topic: str) -> int:
        """The seq of topic's last event (0: none yet); in a snapshot, the snapshot's."""
        row = self.database.execute_sql(
            self._sql("SELECT last_seq FROM event_topic WHERE topic = ?"), (topic,)
        ).fetchone()
        return int(row[0]) if row else 0

    def read_after(self, topic: str, seq: int, limit: int) -> list[StoredEvent]:
        """Up to limit events of topic after seq, in order; OUT_OF_RANGE (EVENT_EXPIRED) when
        the next one was purged (the first returned must be seq + 1)."""
        rows = self.database.execute_sql(
            self._sql(
                f"SELECT {_COLUMNS} FROM event WHERE topic = ? AND seq > ? ORDER BY seq LIMIT ?"
            ),
            (topic, seq, limit),
        ).fetchall()
        events = [_stored(row) for row in rows]
        if events and events[0].seq != seq + 1:
            raise _expired()
        return events

    def check_resume(self, topic: str, seq: int, field: str = "start_after") -> None:
        """A stream may resume after seq: INVALID_ARGUMENT if the topic never reached seq,
        OUT_OF_RANGE (EVENT_EXPIRED) if the event after it was purged."""
        last = self.position(topic)
        if seq > last:
            raise _invalid_cursor(field)
        if seq < last:
            found = self.database.execute_sql(
                self._sql("SELECT 1 FROM event WHERE topic = ? AND seq = ?"), (topic, seq + 1)
            ).fetchone()
            if found is None:
                raise _expired()

    def has_after(self, topic: str, seq: int, resource_id: str, kind: int) -> bool:
        """Whether topic has an event of type kind about resource_id after seq."""
        found = self.database.execute_sql(
            self._sql(
                "SELECT 1 FROM event WHERE topic = ? AND seq > ? AND resource_id = ? AND type = ?"
            ),
            (topic, seq, resource_id, kind),
        ).fetchone()
        return found is not None

    # ------------------------------------------------------------------ retention

    def purge(self, now: datetime, retention: float, limit: int) -> int:
        """Delete up to limit events older than retention seconds; how many. The counters
        (event_topic) stay: a topic's numbers never restart."""
        cutoff = now - timedelta(seconds=retention)
        with self.database.atomic():
            cursor = self.database.execute_sql(
                self._sql(
                    "DELETE FROM event WHERE id IN (SELECT id FROM event WHERE create_time < ? "
                    "ORDER BY create_time LIMIT ?)"
                ),
                (cutoff, limit),
            )
            return int(cursor.rowcount)

    def purge_task(self, retention: float) -> Purge:
        return Purge("expired events", lambda now, limit: self.purge(now, retention, limit))


def _binary(state: bytes) -> Any:
    import psycopg2

    return psycopg2.Binary(state)


def _stored(row: Sequence[Any]) -> StoredEvent:
    topic, seq, kind, resource_id, actor_id, owner_id, create_time, state = row
    if isinstance(create_time, str):  # SQLite returns the text
        create_time = datetime.fromisoformat(create_time)
    return StoredEvent(
        topic,
        int(seq),
        int(kind),
        resource_id,
        actor_id,
        owner_id,
        create_time,
        bytes(state) if state is not None else None,
    )


def _expired() -> OutOfRange:
    return OutOfRange(
        "start_after is older than the events kept: read the resource again and watch "
        "without start_after",
        reason=EVENT_EXPIRED,
    )


def _invalid_cursor(field: str) -> InvalidArgument:
    return InvalidArgument(
        f"{field} is not an event_id this stream issued",
        [(field, "must be the event_id of an event of this stream, or empty")],
        reason=INVALID_CURSOR,
    )


# ---------------------------------------------------------------------------
# Cursors
# ---------------------------------------------------------------------------

_CURSOR = re.compile(r"([0-9a-f]{16})([0-9a-f]{8})")


@dataclass(frozen=True)
class Stream:
    """What one watch follows: a topic, and a filter that narrows it (a stream of one draft
    and a stream of all of them have different cursors though they share the topic)."""

    topic: str
    filter: str = ""

    @property
    def _tag(self) -> str:
        return hashlib.sha256(f"{self.topic}\0{self.filter}".encode()).hexdigest()[:8]

    def cursor(self, seq: int) -> str:
        """The event_id of position seq: fixed width, so cursors sort as events do."""
        return f"{seq:016x}{self._tag}"

    def seq_of(self, cursor: str, field: str = "start_after") -> int:
        """The position a cursor of this stream names; INVALID_ARGUMENT for anything else."""
        match = _CURSOR.fullmatch(cursor)
        if match is None or match.group(2) != self._tag:
            raise _invalid_cursor(field)
        return int(match.group(1), 16)
