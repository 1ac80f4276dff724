"""WatchCohortDrafts on real servers, SQLite and PostgreSQL: snapshots, every write's event
(its form equal to what GetCohortDraft answers after it), resume, ownership, rollbacks."""

from __future__ import annotations

import contextlib
import time
import uuid

import grpc
import pytest

from cohort_service import watching
from cohort_service.server import SERVICE
from cohort_service.v1 import draft_pb2, draft_service_pb2, draft_service_pb2_grpc
from shared import failpoints
from shared.events import Stream
from tests.cohort_service.support import Client
from tests.support import bearer, days_ahead, failure, serve, snapshot
from tests.watchers import StreamWatcher

Type = draft_pb2.CohortDraftEvent.Type


def watch(client: Client, draft_id: str = "", start_after: str = "") -> StreamWatcher:
    stub = draft_service_pb2_grpc.CohortDraftServiceStub(client.server.channel)
    request = draft_service_pb2.WatchCohortDraftsRequest(draft_id=draft_id, start_after=start_after)
    return StreamWatcher(stub.WatchCohortDrafts(request, metadata=client.metadata))


def opened(client: Client, draft_id: str = "") -> StreamWatcher:
    """A stream past its snapshot (all drafts: up to SYNCED)."""
    watcher = watch(client, draft_id)
    if draft_id:
        assert watcher.next().type == Type.TYPE_SNAPSHOT
    else:
        while watcher.next().type != Type.TYPE_SYNCED:
            pass
    return watcher


def test_a_draft_stream_opens_with_its_form_then_sends_each_change_as_get_answers_it(alice):
    draft_id = alice.patch(name="Q1").draft_id
    watcher = watch(alice, draft_id)
    first = watcher.next()
    assert (first.type, first.draft_id) == (Type.TYPE_SNAPSHOT, draft_id)
    assert first.form_state == alice.get(draft_id)

    alice.patch(draft_id=draft_id, description="Quarter one")
    patched = watcher.next()
    assert (patched.type, patched.actor_id) == (Type.TYPE_PATCHED, "user:alice")
    assert patched.form_state == alice.get(draft_id)

    staged = alice.patch(draft_id=draft_id, name="Q2", soft=True)
    event = watcher.next()
    assert event.type == Type.TYPE_PROPOSAL_STAGED
    # The draft as stored, listing the proposal (not the preview the response carries).
    assert event.form_state == alice.get(draft_id) and event.form_state.name.value == "Q1"
    assert [p.idempotency_key for p in event.form_state.proposals] == [staged.idempotency_key]

    alice.patch(idempotency_key=staged.idempotency_key, accept=True)
    accepted = watcher.next()
    assert accepted.type == Type.TYPE_PROPOSAL_ACCEPTED
    assert accepted.form_state == alice.get(draft_id) and accepted.form_state.name.value == "Q2"

    rejected_key = alice.patch(draft_id=draft_id, name="Q3", soft=True).idempotency_key
    alice.patch(idempotency_key=rejected_key, accept=False)
    assert watcher.next().type == Type.TYPE_PROPOSAL_STAGED
    rejected = watcher.next()
    assert rejected.type == Type.TYPE_PROPOSAL_REJECTED
    assert rejected.form_state == alice.get(draft_id) and not rejected.form_state.proposals

    alice.delete(draft_id)
    deleted = watcher.next()
    assert deleted.type == Type.TYPE_DELETED and not deleted.HasField("form_state")
    assert watcher.ending() is None  # OK after DELETED
    cursors = [first, patched, event, accepted, rejected, deleted]
    ids = [e.event_id for e in cursors]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_the_all_drafts_stream_snapshots_each_draft_then_synced_then_every_draft_change(alice):
    drafts = {alice.patch(name=f"Draft {index}").draft_id for index in range(3)}
    dormant = alice.patch(name="Dormant", soft=True)
    watcher = watch(alice)
    snapshots = watcher.take(4)
    assert {e.type for e in snapshots} == {Type.TYPE_SNAPSHOT}
    assert {e.draft_id for e in snapshots} == drafts | {dormant.draft_id}
    for event in snapshots:
        assert event.form_state == alice.get(event.draft_id)
    synced = watcher.next()
    assert synced.type == Type.TYPE_SYNCED and not synced.HasField("form_state")
    assert {e.event_id for e in snapshots} == {synced.event_id}

    created = alice.patch(name="New").draft_id
    alice.patch(idempotency_key=dormant.idempotency_key, accept=False)  # deletes the draft
    assert [(watching.Type.Name(e.type), e.draft_id) for e in watcher.take(3)] == [
        ("TYPE_PATCHED", created),
        ("TYPE_PROPOSAL_REJECTED", dormant.draft_id),
        ("TYPE_DELETED", dormant.draft_id),
    ]
    assert watcher.idle()  # an all-drafts stream outlives its drafts


def test_a_caller_without_drafts_gets_synced_at_once(alice):
    event = watch(alice).next()
    assert event.type == Type.TYPE_SYNCED and event.event_id


def test_a_snapshot_over_several_pages_skips_the_changes_its_later_pages_already_show(
    alice, monkeypatch
):
    monkeypatch.setattr(watching, "SNAPSHOT_PAGE", 2)
    ids = [alice.patch(name=f"Draft {index}").draft_id for index in range(5)]
    oldest, newest = ids[0], ids[-1]  # listed newest first: the last page, the first
    reads = []
    real = watching.read_transaction

    @contextlib.contextmanager
    def second_page_after_two_patches(database):
        reads.append(database)
        if len(reads) == 2:  # the first page is read and its position taken: commit two changes
            alice.patch(draft_id=oldest, name="Later")  # shown by the last page's snapshot
            alice.patch(draft_id=newest, name="Newest renamed")  # after the first page's
        with real(database):
            yield

    monkeypatch.setattr(watching, "read_transaction", second_page_after_two_patches)
    watcher = watch(alice)
    events = watcher.take(6)
    assert [e.type for e in events] == [Type.TYPE_SNAPSHOT] * 5 + [Type.TYPE_SYNCED]
    names = {e.draft_id: e.form_state.name.value for e in events[:5]}
    assert (names[oldest], names[newest]) == ("Later", "Draft 4")
    # Only the change the snapshot did not show; "Later" is not sent again.
    after = watcher.next()
    assert (after.type, after.draft_id) == (Type.TYPE_PATCHED, newest)
    assert after.form_state.name.value == "Newest renamed"
    assert watcher.idle()
    # Resumed from the snapshot's cursor, both changes come (nothing after it is skipped).
    resumed = watch(alice, start_after=events[-1].event_id)
    assert [e.form_state.name.value for e in resumed.take(2)] == ["Later", "Newest renamed"]


def test_another_principals_drafts_are_never_seen(alice, bob):
    theirs = bob.patch(name="Bob's").draft_id
    watcher = opened(alice)
    bob.patch(draft_id=theirs, name="Bob's renamed")
    bob.patch(name="Bob's second")
    mine = alice.patch(name="Marker").draft_id
    marker = watcher.next()
    assert marker.draft_id == mine and watcher.idle()
    # Naming another principal's draft is NOT_FOUND, as a read of it is.
    error = watch(alice, theirs).ending()
    assert error is not None
    answer = failure(error)
    assert (answer.code, answer.reason) == (grpc.StatusCode.NOT_FOUND, "DRAFT_NOT_FOUND")


def test_a_draft_stream_sends_only_that_draft(alice):
    watched = alice.patch(name="Watched").draft_id
    other = alice.patch(name="Other").draft_id
    watcher = opened(alice, watched)
    alice.patch(draft_id=other, name="Other renamed")
    alice.patch(draft_id=watched, name="Watched renamed")
    assert watcher.next().form_state.name.value == "Watched renamed"
    assert watcher.idle()


def test_a_stream_resumes_after_its_cursor_across_a_restart_with_nothing_lost_or_repeated(
    database_url,
):
    with serve(SERVICE, database_url) as server:
        alice = Client(server, bearer("user:alice"))
        draft_id = alice.patch(name="Zero").draft_id
        watcher = watch(alice)
        watcher.next()
        cursor = watcher.next().event_id  # SYNCED
        alice.patch(draft_id=draft_id, name="One")
        seen = watcher.next()
        assert seen.form_state.name.value == "One"
        alice.patch(draft_id=draft_id, name="Two")
        watcher.cancel()
    with serve(SERVICE, database_url) as server:
        alice = Client(server, bearer("user:alice"))
        alice.patch(draft_id=draft_id, name="Three")
        resumed = watch(alice, start_after=seen.event_id)
        assert [e.form_state.name.value for e in resumed.take(2)] == ["Two", "Three"]
        assert resumed.idle()
        from_synced = watch(alice, start_after=cursor)
        assert [e.form_state.name.value for e in from_synced.take(3)] == ["One", "Two", "Three"]
        # A draft stream's cursors are its own: the all-drafts cursor is refused there.
        error = watch(alice, draft_id, start_after=cursor).ending()
        assert error is not None and failure(error).code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "draft_id, start_after, field",
    [
        ("not-a-uuid", "", "draft_id"),
        ("", "garbage", "start_after"),
        ("", Stream("drafts:user:bob").cursor(1), "start_after"),  # another principal's
        ("", Stream("drafts:user:alice").cursor(99), "start_after"),  # never reached
    ],
)
def test_a_bad_draft_id_or_cursor_is_invalid_argument_naming_it(
    alice, draft_id, start_after, field
):
    alice.patch(name="Q1")
    error = watch(alice, draft_id, start_after).ending()
    assert error is not None
    answer = failure(error)
    assert answer.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in dict(answer.violations)


def test_failed_validate_only_and_replayed_patches_emit_nothing(alice, server):
    draft_id = alice.patch(name="Q1").draft_id
    watcher = opened(alice, draft_id)
    before = snapshot(server.database)
    alice.patch(draft_id=draft_id, name="Checked only", validate_only=True)
    with pytest.raises(grpc.RpcError):
        alice.patch(draft_id=draft_id, departments=["No such department"])
    with pytest.raises(grpc.RpcError):
        alice.patch(draft_id=draft_id, name="Stale", etag="0" * 16)
    assert snapshot(server.database) == before
    alice.patch(draft_id=draft_id, name="Once", idempotency_key="once")
    alice.patch(draft_id=draft_id, name="Once", idempotency_key="once")  # the stored answer
    alice.patch(draft_id=draft_id, name="Marker")
    assert [e.form_state.name.value for e in watcher.take(2)] == ["Once", "Marker"]
    assert watcher.idle()


@pytest.mark.parametrize("point", ["cohort.patch.before_commit", "cohort.ack.after_decision"])
def test_a_write_that_rolls_back_after_its_event_was_appended_emits_nothing(alice, point):
    draft_id = alice.patch(name="Q1").draft_id
    staged = alice.patch(draft_id=draft_id, name="Proposed", soft=True)
    watcher = opened(alice, draft_id)
    failpoints.arm(f"{point}=raise#1")
    try:
        with pytest.raises(grpc.RpcError) as caught:
            if point.startswith("cohort.ack"):
                alice.patch(idempotency_key=staged.idempotency_key, accept=True)
            else:
                alice.patch(draft_id=draft_id, name="Rolled back")
        assert caught.value.code() == grpc.StatusCode.INTERNAL
    finally:
        failpoints.disarm()
    alice.patch(draft_id=draft_id, description="Marker")
    marker = watcher.next()
    assert marker.form_state.description.value == "Marker"
    assert marker.form_state.name.value == "Q1"
    assert watcher.idle()


def test_expired_proposals_are_service_events_and_the_dormant_draft_they_made_is_deleted(
    database_url,
):
    at = days_ahead(SERVICE, database_url)
    with at() as server:
        alice = Client(server, bearer("user:alice"))
        active = alice.patch(name="Q1").draft_id
        alice.patch(draft_id=active, name="Proposed", soft=True)
        dormant = alice.patch(name="Dormant", soft=True).draft_id
        watcher = watch(alice)
        first = watcher.take(3)[-1]
        assert first.type == Type.TYPE_SYNCED
        watcher.cancel()
    with at(days=7.01) as server:
        alice = Client(server, bearer("user:alice"))
        assert server.purger.run_once()["expired proposals"] == 2
        resumed = watch(alice, start_after=first.event_id)
        events = resumed.take(3)
        by_draft = {(e.draft_id, watching.Type.Name(e.type)): e for e in events}
        assert set(by_draft) == {
            (active, "TYPE_PROPOSAL_EXPIRED"),
            (dormant, "TYPE_PROPOSAL_EXPIRED"),
            (dormant, "TYPE_DELETED"),
        }
        assert {e.actor_id for e in events} == {""}
        expired = by_draft[(active, "TYPE_PROPOSAL_EXPIRED")]
        assert expired.form_state == alice.get(active) and not expired.form_state.proposals
        assert not by_draft[(dormant, "TYPE_DELETED")].HasField("form_state")
        assert resumed.idle()


def test_a_cursor_older_than_the_retention_is_out_of_range(database_url):
    at = days_ahead(SERVICE, database_url)
    with at() as server:
        alice = Client(server, bearer("user:alice"))
        draft_id = alice.patch(name="Q1").draft_id
        cursor = watch(alice, draft_id).next().event_id
        alice.patch(draft_id=draft_id, name="Later")
    with at(days=4) as server:
        assert server.purger.run_once()["expired events"] == 2
        error = watch(Client(server, bearer("user:alice")), draft_id, cursor).ending()
        assert error is not None
        answer = failure(error)
        assert (answer.code, answer.reason) == (grpc.StatusCode.OUT_OF_RANGE, "EVENT_EXPIRED")


def test_a_one_draft_stream_resumed_after_its_draft_was_deleted_ends_or_is_not_found(alice):
    draft_id = alice.patch(name="Q1").draft_id
    watcher = watch(alice, draft_id)
    snapshot = watcher.next()
    alice.delete(draft_id)
    deleted = watcher.next()
    assert deleted.type == Type.TYPE_DELETED and watcher.ending() is None
    # Before the DELETED event: it comes, then OK.
    resumed = watch(alice, draft_id, start_after=snapshot.event_id)
    assert resumed.next().event_id == deleted.event_id and resumed.ending() is None
    # After it there is nothing to wait for: NOT_FOUND rather than a stream open for ever.
    error = watch(alice, draft_id, start_after=deleted.event_id).ending(timeout=5)
    assert error is not None
    answer = failure(error)
    assert (answer.code, answer.reason) == (grpc.StatusCode.NOT_FOUND, "DRAFT_NOT_FOUND")


def test_idle_keeps_the_events_in_order(alice):
    draft_id = alice.patch(name="Q0").draft_id
    watcher = opened(alice, draft_id)
    for name in ("Q1", "Q2"):
        alice.patch(draft_id=draft_id, name=name)
    deadline = time.monotonic() + 10
    while watcher._queue.qsize() < 2:  # both queued: a put-back at the end would reorder
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not watcher.idle(5)  # looks at Q1 and keeps it first
    assert [e.form_state.name.value for e in watcher.take(2)] == ["Q1", "Q2"]


def test_a_missing_draft_is_not_found(alice):
    error = watch(alice, str(uuid.uuid4())).ending()
    assert error is not None and failure(error).code == grpc.StatusCode.NOT_FOUND
