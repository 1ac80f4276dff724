"""Commit order under a forced interleaving on PostgreSQL (READ COMMITTED).

A second connection takes the report's next event number (the `event_topic` row lock) and
holds it uncommitted while a real UpdateReport runs: the write blocks on the counter after
its change, nothing is delivered meanwhile, and once the holder commits the watcher gets
the holder's event and then the write's, consecutive, none lost. Ordered by ids (handed out
at insert), a reader could have seen a later id commit first and passed the earlier by.
"""

from __future__ import annotations

import time
from concurrent import futures

import psycopg2
import pytest
from google.protobuf import field_mask_pb2

from report_service.server import SERVICE
from report_service.v1 import report_pb2
from shared.clock import utcnow
from shared.events import Stream
from tests.conftest import POSTGRES_SCHEMA, POSTGRES_URL, _postgres_test_url
from tests.report_service.support import Client
from tests.report_service.watchers import Type, Watcher
from tests.support import serve

pytestmark = pytest.mark.postgres
ORIGINAL = "team:sales-dashboard"
TOPIC = f"report:{ORIGINAL}"


def _lock_waits(cursor) -> int:
    cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
    return cursor.fetchone()[0]


def test_an_event_numbered_first_but_committed_later_is_delivered_first_and_not_lost(
    postgres_admin,
):
    url = _postgres_test_url(postgres_admin)
    with serve(SERVICE, url) as server:
        alice = Client.of(server, "user:alice")
        created = alice.create()
        watcher = Watcher(server.channel, alice.metadata, ORIGINAL)
        opened = watcher.next()
        holder = psycopg2.connect(POSTGRES_URL)
        try:
            with holder.cursor() as cursor:
                cursor.execute(f'SET search_path TO "{POSTGRES_SCHEMA}"')
                # What EventStore.append does, from a transaction the test keeps open.
                cursor.execute(
                    "INSERT INTO event_topic (topic, last_seq) VALUES (%s, 1) ON CONFLICT (topic) "
                    "DO UPDATE SET last_seq = event_topic.last_seq + 1 RETURNING last_seq",
                    (TOPIC,),
                )
                held_seq = cursor.fetchone()[0]
                state = report_pb2.Report(id=ORIGINAL, name="From the holder")
                cursor.execute(
                    "INSERT INTO event (topic, seq, type, resource_id, actor_id, owner_id, "
                    "create_time, state) VALUES (%s, %s, %s, %s, 'user:holder', '', %s, %s)",
                    (
                        TOPIC,
                        held_seq,
                        Type.TYPE_REPORT_UPDATED,
                        ORIGINAL,
                        utcnow(),
                        state.SerializeToString(),
                    ),
                )
            with futures.ThreadPoolExecutor(1) as pool:
                write = pool.submit(
                    alice.call,
                    "UpdateReport",
                    report=report_pb2.Report(id=ORIGINAL, name="From the write"),
                    update_mask=field_mask_pb2.FieldMask(paths=["name"]),
                )
                with psycopg2.connect(POSTGRES_URL) as probe, probe.cursor() as cursor:
                    deadline = time.monotonic() + 10
                    while _lock_waits(cursor) < 1:  # the write waits on the counter row
                        assert time.monotonic() < deadline and not write.done()
                        time.sleep(0.02)
                assert watcher.idle(0.5)  # neither is committed
                assert alice.call("GetReport", id=ORIGINAL) == created
                holder.commit()
                updated = write.result(timeout=10)
            events = watcher.take(2)
        finally:
            holder.close()
        assert [(e.report.name, e.actor_id) for e in events] == [
            ("From the holder", "user:holder"),
            ("From the write", "user:alice"),
        ]
        assert events[1].report == updated
        stream = Stream(TOPIC)
        first = stream.seq_of(opened.event_id)
        assert [stream.seq_of(e.event_id) for e in events] == [first + 1, first + 2]
        assert watcher.idle()
