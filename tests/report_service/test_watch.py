"""WatchReport on real servers, SQLite and PostgreSQL: snapshot, changes, resume, ownership."""

from __future__ import annotations

import contextlib
import dataclasses
import time

import grpc
import pytest
from google.protobuf import field_mask_pb2

from report_service.server import SERVICE
from report_service.v1 import report_pb2
from shared.config import AuthSettings
from shared.events import Stream
from shared.lanes import Limits
from shared.server import LIMITS, run_server
from tests import support
from tests.report_service.support import Client, struct, valid_report
from tests.report_service.watchers import Type, Watcher, reason_of
from tests.support import DAY, RunningService, bearer, count_queries, failure

ORIGINAL = "team:sales-dashboard"
DRAFT = "user:alice:sales-dashboard-draft"


@contextlib.contextmanager
def serving(url: str, limits: Limits = LIMITS, **overrides):
    """A real server on port 0 with the given limits (tests/support.serve has the defaults)."""
    settings = support.test_settings(SERVICE, url, **overrides)
    with run_server(SERVICE, settings, limits=limits) as running:
        address = f"127.0.0.1:{running.port}"
        with grpc.insecure_channel(address) as channel:
            yield RunningService(channel, address, running.database, settings, running.purger)


def watch(client: Client, report_id: str = ORIGINAL, start_after: str = "") -> Watcher:
    return Watcher(client.server.channel, client.metadata, report_id, start_after)


def rename(client: Client, name: str, report_id: str = ORIGINAL, **extra) -> report_pb2.Report:
    return client.call(
        "UpdateReport",
        report=report_pb2.Report(id=report_id, name=name),
        update_mask=field_mask_pb2.FieldMask(paths=["name"]),
        **extra,
    )


def test_a_watch_opens_with_a_snapshot_then_sends_every_change_in_commit_order(alice):
    alice.create()
    draft = alice.call("EditReport", id=ORIGINAL)
    watcher = watch(alice)
    snapshot = watcher.next()
    assert snapshot.type == Type.TYPE_SNAPSHOT
    assert snapshot.report == alice.call("GetReport", id=ORIGINAL)
    assert snapshot.draft == draft
    renamed = rename(alice, "Renamed")
    put = alice.call(
        "PutReportDraft", id=ORIGINAL, draft=report_pb2.ReportDraftInput(defn=struct({"v": 2}))
    )
    committed = alice.call("CommitReportDraft", id=ORIGINAL)
    events = watcher.take(4)
    assert [Type.Name(e.type) for e in events] == [
        "TYPE_REPORT_UPDATED",
        "TYPE_DRAFT_UPDATED",
        "TYPE_DRAFT_COMMITTED",
        "TYPE_REPORT_COMMITTED",
    ]
    assert events[0].report == renamed and events[0].actor_id == "user:alice"
    assert events[1].draft == put.report and events[1].resource_id == DRAFT
    assert events[2].resource_id == DRAFT and not events[2].HasField("draft")
    assert events[3].report == committed
    cursors = [snapshot.event_id, *(e.event_id for e in events)]
    assert cursors == sorted(cursors) and len(set(cursors)) == 5
    alice.call("DeleteReport", id=ORIGINAL)
    deleted = watcher.next()
    assert deleted.type == Type.TYPE_REPORT_DELETED and not deleted.HasField("report")
    assert watcher.ending() is None  # OK after REPORT_DELETED


def test_every_write_appends_its_event_and_a_rollback_restores_the_original(alice):
    alice.create()
    first = alice.call("ListReportRevisions", report_id=ORIGINAL).revisions[-1].revision_id
    watcher = watch(alice)
    watcher.next()
    alice.call("EditReport", id=ORIGINAL)
    alice.call("EditReport", id=ORIGINAL)  # returns the draft as it is: no event
    rename(alice, "Draft name", DRAFT)
    alice.call("DiscardReportDraft", id=ORIGINAL)
    alice.call(
        "PutReportDraft", id=ORIGINAL, draft=report_pb2.ReportDraftInput(defn=struct({"v": 1}))
    )
    rename(alice, "Moved on")
    alice.call("RebaseReportDraft", id=ORIGINAL)
    alice.call("RebaseReportDraft", id=ORIGINAL)  # already based on the original: no event
    alice.call("DeleteReport", id=DRAFT)
    rolled_back = alice.call("RollbackReport", id=ORIGINAL, revision_id=first)
    alice.call("CreateReport", report=valid_report(id="team:other"))  # another topic
    assert watcher.types(8) == [
        "TYPE_DRAFT_CREATED",
        "TYPE_DRAFT_UPDATED",
        "TYPE_DRAFT_DISCARDED",
        "TYPE_DRAFT_CREATED",
        "TYPE_REPORT_UPDATED",
        "TYPE_DRAFT_UPDATED",
        "TYPE_DRAFT_DISCARDED",
        "TYPE_REPORT_ROLLED_BACK",
    ]
    assert watcher.idle()  # nothing of team:other
    assert alice.call("GetReport", id=ORIGINAL) == rolled_back


def test_another_principals_draft_events_are_never_delivered(alice, bob):
    alice.create()
    watcher = watch(bob)
    assert not watcher.next().HasField("draft")
    alice.call("EditReport", id=ORIGINAL)
    rename(alice, "Alice's draft", DRAFT)
    alice.call("DiscardReportDraft", id=ORIGINAL)
    alice.call("EditReport", id=ORIGINAL)
    alice.call("CommitReportDraft", id=ORIGINAL)
    bob_draft = bob.call("EditReport", id=ORIGINAL)
    events = watcher.take(2)
    assert [Type.Name(e.type) for e in events] == ["TYPE_REPORT_COMMITTED", "TYPE_DRAFT_CREATED"]
    assert events[1].draft == bob_draft
    assert watcher.idle()
    # Her own stream has them all.
    assert watch(alice).next().type == Type.TYPE_SNAPSHOT


def test_a_watch_resumes_after_its_cursor_across_a_restart_with_nothing_lost_or_repeated(
    database_url,
):
    with support.serve(SERVICE, database_url) as server:
        alice = Client.of(server, "user:alice")
        alice.create()
        watcher = watch(alice)
        watcher.next()
        rename(alice, "One")
        seen = watcher.next()
        rename(alice, "Two")  # committed, not yet read by the client when the server stops
        alice.call("EditReport", id=ORIGINAL)
    with support.serve(SERVICE, database_url) as server:
        alice = Client.of(server, "user:alice")
        rename(alice, "Three")
        resumed = watch(alice, start_after=seen.event_id)
        events = resumed.take(3)
        assert [(Type.Name(e.type), e.report.name) for e in events] == [
            ("TYPE_REPORT_UPDATED", "Two"),
            ("TYPE_DRAFT_CREATED", ""),
            ("TYPE_REPORT_UPDATED", "Three"),
        ]
        assert resumed.idle()
        # Resuming after the last event waits for the next one.
        latest = watch(alice, start_after=events[-1].event_id)
        assert latest.idle()
        rename(alice, "Four")
        assert latest.next().report.name == "Four"


def test_validate_only_calls_and_replayed_request_ids_emit_nothing(alice):
    alice.create()
    watcher = watch(alice)
    watcher.next()
    rename(alice, "Checked only", validate_only=True)
    alice.call("EditReport", id=ORIGINAL, validate_only=True)
    request_id = "7c0e7f0a-7a4e-4f0e-9d55-3b0c2b8d9a10"
    rename(alice, "Once", request_id=request_id)
    rename(alice, "Once", request_id=request_id)  # the stored answer, not a second write
    rename(alice, "Marker")
    events = watcher.take(2)
    assert [e.report.name for e in events] == ["Once", "Marker"]
    assert watcher.idle()


def test_a_change_that_rolls_back_emits_no_event(serve_with_driver):
    source = """
        class Driver:
            def after_commit_draft(self, original, draft, changes):
                raise ValueError("the dashboard renderer rejected the new definition")
    """
    with serve_with_driver(source) as server:
        alice = Client.of(server, "user:alice")
        alice.create()
        alice.call("EditReport", id=ORIGINAL)
        watcher = watch(alice)
        watcher.next()
        with pytest.raises(grpc.RpcError):
            alice.call("CommitReportDraft", id=ORIGINAL)
        rename(alice, "Marker")
        assert watcher.next().report.name == "Marker"
        assert watcher.idle()


def test_a_purged_draft_is_an_expired_event_of_its_owner(database_url):
    with support.serve(SERVICE, database_url) as server:
        alice = Client.of(server, "user:alice")
        alice.create()
        alice.call("EditReport", id=ORIGINAL)
        cursor = watch(alice).next().event_id
    with support.serve(SERVICE, database_url, clock_offset=31 * DAY) as server:
        assert server.purger.run_once()["expired report drafts"] == 1
        alice = Client.of(server, "user:alice")
        expired = watch(alice, start_after=cursor).next()
        assert (expired.type, expired.resource_id, expired.actor_id) == (
            Type.TYPE_DRAFT_EXPIRED,
            DRAFT,
            "",
        )


def test_a_cursor_older_than_the_retention_is_out_of_range(database_url):
    with support.serve(SERVICE, database_url) as server:
        alice = Client.of(server, "user:alice")
        alice.create()
        cursor = watch(alice).next().event_id
        rename(alice, "Later")
    with support.serve(SERVICE, database_url, clock_offset=4 * DAY) as server:
        assert server.purger.run_once()["expired events"] == 2
        error = watch(Client.of(server, "user:alice"), start_after=cursor).ending()
        assert error is not None
        answer = failure(error)
        assert (answer.code, answer.reason) == (grpc.StatusCode.OUT_OF_RANGE, "EVENT_EXPIRED")


@pytest.mark.parametrize(
    "start_after",
    [
        "garbage",
        "0" * 24,
        Stream(f"report:{ORIGINAL}").cursor(99),  # past the report's last event
        Stream("report:team:other").cursor(1),  # another report's
    ],
)
def test_a_cursor_this_stream_did_not_issue_is_invalid(alice, start_after):
    alice.create()
    alice.create(id="team:other")
    rename(alice, "Other", "team:other")
    error = watch(alice, start_after=start_after).ending()
    assert error is not None
    answer = failure(error)
    assert answer.code == grpc.StatusCode.INVALID_ARGUMENT
    assert answer.fields == ["start_after"]


def test_watching_a_missing_report_or_a_draft_is_not_found(alice, bob):
    alice.create()
    alice.call("EditReport", id=ORIGINAL)
    for client, report_id in ((alice, "team:missing"), (alice, DRAFT), (bob, DRAFT)):
        error = watch(client, report_id).ending()
        assert error is not None
        answer = failure(error)
        assert (answer.code, answer.reason) == (grpc.StatusCode.NOT_FOUND, "REPORT_NOT_FOUND")
    bad = watch(alice, "").ending()
    assert bad is not None and failure(bad).fields == ["id"]


def test_a_watch_ends_unauthenticated_when_its_token_expires(sqlite_url):
    auth = AuthSettings(secret=support.TEST_SECRET, leeway=0)
    with serving(sqlite_url, auth=auth) as server:
        Client.of(server, "user:alice").create()
        short = Client(server, bearer("user:alice", ttl_seconds=2))
        watcher = watch(short)
        watcher.next()
        error = watcher.ending(timeout=10)
        assert error is not None
        answer = failure(error)
        assert (answer.code, answer.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED")


def test_watches_past_the_limits_are_refused_too_many_watches(sqlite_url):
    limits = dataclasses.replace(LIMITS, watches=3, watches_per_principal=2)
    with serving(sqlite_url, limits) as server:
        alice, bob = Client.of(server, "user:alice"), Client.of(server, "user:bob")
        alice.create()
        opened = [watch(alice), watch(alice)]
        for watcher in opened:
            watcher.next()
        refused = failure(watch(alice).ending())
        assert (refused.code, refused.reason) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "TOO_MANY_WATCHES",
        )
        assert refused.metadata["limit"] == "2"
        watch(bob).next()  # another principal: the third of the process
        full = failure(watch(bob).ending())
        assert (full.reason, full.metadata["limit"]) == ("TOO_MANY_WATCHES", "3")
        opened[0].cancel()
        deadline = time.monotonic() + 10
        while True:  # the cancelled stream's thread is given back
            replacement = watch(alice)
            try:
                replacement.next(timeout=2)
                break
            except AssertionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert alice.call("GetReport", id=ORIGINAL).id == ORIGINAL


def test_a_watcher_that_stops_reading_is_cut_off_resource_exhausted(sqlite_url):
    limits = dataclasses.replace(LIMITS, watch_send_seconds=0.5)
    with serving(sqlite_url, limits) as server:
        alice = Client.of(server, "user:alice")
        alice.create()
        # No BDP probe: the flow-control window stays at its 64 KiB start, as for a stalled
        # reader; the client reads the snapshot and then nothing.
        with grpc.insecure_channel(server.address, [("grpc.http2.bdp_probe", 0)]) as channel:
            stream = Watcher.unread(channel, alice.metadata, ORIGINAL)
            big = struct({"blob": "x" * 200_000})
            for _ in range(10):
                alice.call(
                    "UpdateReport",
                    report=report_pb2.Report(id=ORIGINAL, defn=big),
                    update_mask=field_mask_pb2.FieldMask(paths=["defn"]),
                )
            time.sleep(2)  # four times the limit, and the watchdog's period
            with pytest.raises(grpc.RpcError) as caught:
                for _ in stream:
                    pass
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert reason_of(caught.value) == "WATCHER_TOO_SLOW"
        assert alice.call("GetReport", id=ORIGINAL).id == ORIGINAL


def test_the_drain_ends_a_watch_blocked_on_a_client_that_reads_nothing_unavailable(sqlite_url):
    block = serving(sqlite_url, grace_period=10.0)
    server = block.__enter__()
    try:
        alice = Client.of(server, "user:alice")
        alice.create()
        with grpc.insecure_channel(server.address, [("grpc.http2.bdp_probe", 0)]) as channel:
            stream = Watcher.unread(channel, alice.metadata, ORIGINAL)
            big = struct({"blob": "x" * 200_000})
            for _ in range(10):  # more than the windows: the server's send blocks
                alice.call(
                    "UpdateReport",
                    report=report_pb2.Report(id=ORIGINAL, defn=big),
                    update_mask=field_mask_pb2.FieldMask(paths=["defn"]),
                )
            started = time.monotonic()
            block.__exit__(None, None, None)
            assert time.monotonic() - started < 5  # not the 10 s grace period
            with pytest.raises(grpc.RpcError) as caught:
                for _ in stream:
                    pass
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert reason_of(caught.value) == "SHUTTING_DOWN", caught.value.details()
    except BaseException:
        block.__exit__(None, None, None)
        raise


def test_one_change_seen_by_many_watchers_is_read_from_the_table_about_once(alice):
    alice.create()
    watchers = [watch(alice) for _ in range(30)]
    for watcher in watchers:
        watcher.next()
    rename(alice, "Warm")  # the first change fills the topic's cache
    for watcher in watchers:
        watcher.next()
    time.sleep(0.2)
    with count_queries() as counted:
        rename(alice, "Seen by all")
        assert {watcher.next().report.name for watcher in watchers} == {"Seen by all"}
    reads = [s for s in counted.statements if "FROM event WHERE" in s and "ORDER BY seq" in s]
    assert 1 <= len(reads) <= 3, reads  # one, or a few when a read met the next notification
    for watcher in watchers:
        watcher.cancel()
