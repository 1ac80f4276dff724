"""WatchReport on real servers, SQLite and PostgreSQL: snapshot, changes, resume, ownership."""

from __future__ import annotations

import contextlib

import grpc
from google.protobuf import field_mask_pb2

from report_service.server import SERVICE
from report_service.v1 import report_pb2
from shared.lanes import Limits
from shared.server import LIMITS, run_server
from tests import support
from tests.report_service.support import Client, struct, valid_report
from tests.report_service.watchers import Type, Watcher
from tests.support import RunningService

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
