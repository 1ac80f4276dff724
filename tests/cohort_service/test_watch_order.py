"""Cohort events under a forced interleaving on PostgreSQL (READ COMMITTED).

The proposal-expiry purge appends to several owners' topics in one transaction, in topic
order. A second connection takes alice's next event number (her topic's counter row lock)
and holds it uncommitted while the purge runs: the purge blocks on that counter after its
changes, nothing of it is visible meanwhile (not even bob's events, whose topic comes
after), and once the holder commits both watchers get everything in order, none lost.
"""

from __future__ import annotations

import time
from concurrent import futures

import psycopg2
import pytest

from cohort_service.draft_events import topic
from cohort_service.server import SERVICE
from cohort_service.v1 import draft_pb2, draft_service_pb2, draft_service_pb2_grpc
from shared.clock import utcnow
from shared.events import Stream
from tests.cohort_service.support import Client
from tests.conftest import POSTGRES_SCHEMA, POSTGRES_URL, _postgres_test_url
from tests.support import bearer, days_ahead
from tests.watchers import StreamWatcher

pytestmark = pytest.mark.postgres
Type = draft_pb2.CohortDraftEvent.Type


def _watch(client: Client) -> StreamWatcher:
    stub = draft_service_pb2_grpc.CohortDraftServiceStub(client.server.channel)
    return StreamWatcher(
        stub.WatchCohortDrafts(
            draft_service_pb2.WatchCohortDraftsRequest(), metadata=client.metadata
        )
    )


def _lock_waits(cursor) -> int:
    cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
    return cursor.fetchone()[0]


def test_a_purge_waiting_on_an_owners_event_counter_delivers_after_it_in_order(postgres_admin):
    at = days_ahead(SERVICE, _postgres_test_url(postgres_admin))
    with at() as server:
        for principal in ("user:alice", "user:bob"):
            client = Client(server, bearer(principal))
            draft_id = client.patch(name="Q1").draft_id
            client.patch(draft_id=draft_id, name="Proposed", soft=True)
    with at(days=7.01) as server:
        alice, bob = Client(server, bearer("user:alice")), Client(server, bearer("user:bob"))
        watchers = {"alice": _watch(alice), "bob": _watch(bob)}
        synced = {name: watcher.take(2)[-1] for name, watcher in watchers.items()}
        assert {event.type for event in synced.values()} == {Type.TYPE_SYNCED}
        holder = psycopg2.connect(POSTGRES_URL)
        try:
            with holder.cursor() as cursor:
                cursor.execute(f'SET search_path TO "{POSTGRES_SCHEMA}"')
                # What EventStore.append does, from a transaction the test keeps open.
                cursor.execute(
                    "UPDATE event_topic SET last_seq = last_seq + 1 WHERE topic = %s "
                    "RETURNING last_seq",
                    (topic("user:alice"),),
                )
                held_seq = cursor.fetchone()[0]
                cursor.execute(
                    "INSERT INTO event (topic, seq, type, resource_id, actor_id, owner_id, "
                    "create_time, state) VALUES (%s, %s, %s, 'held', 'user:alice', "
                    "'user:alice', %s, NULL)",
                    (topic("user:alice"), held_seq, Type.TYPE_DELETED, utcnow()),
                )
            with futures.ThreadPoolExecutor(1) as pool:
                purge = pool.submit(server.purger.run_once)
                with psycopg2.connect(POSTGRES_URL) as probe, probe.cursor() as cursor:
                    deadline = time.monotonic() + 10
                    while _lock_waits(cursor) < 1:  # the purge waits on alice's counter
                        assert time.monotonic() < deadline and not purge.done()
                        time.sleep(0.02)
                assert watchers["alice"].idle(0.5) and watchers["bob"].idle(0.1)
                holder.commit()
                assert purge.result(timeout=10)["expired proposals"] == 2
        finally:
            holder.close()
        held, expired = watchers["alice"].take(2)
        assert (held.draft_id, held.type) == ("held", Type.TYPE_DELETED)
        assert expired.type == Type.TYPE_PROPOSAL_EXPIRED and not expired.form_state.proposals
        assert expired.form_state == alice.get(expired.draft_id)
        stream = Stream(topic("user:alice"))
        first = stream.seq_of(synced["alice"].event_id)
        assert [stream.seq_of(e.event_id) for e in (held, expired)] == [first + 1, first + 2]
        bobs = watchers["bob"].next()
        assert bobs.type == Type.TYPE_PROPOSAL_EXPIRED and bobs.form_state == bob.get(bobs.draft_id)
        assert watchers["alice"].idle() and watchers["bob"].idle(0.1)
