"""Watches across service processes: delivery through the database, and SIGTERM.

Two `report-service serve` (or `cohort-service serve`) processes on one database (SQLite
file or PostgreSQL schema): a watcher on one sees what a client writes through the other
(LISTEN/NOTIFY on PostgreSQL, the feed's poll of the event ids on SQLite). A process stopped
with open watches ends them UNAVAILABLE at once and exits inside its grace period.
"""

from __future__ import annotations

import time

import grpc
from google.protobuf import field_mask_pb2

from cohort_service.v1 import draft_pb2, draft_service_pb2, draft_service_pb2_grpc
from report_service.v1 import report_pb2, report_service_pb2, report_service_pb2_grpc
from tests.processes import service_process
from tests.report_service.support import valid_report
from tests.report_service.watchers import Type, Watcher, reason_of
from tests.support import bearer
from tests.watchers import StreamWatcher

ORIGINAL = "team:sales-dashboard"
CohortType = draft_pb2.CohortDraftEvent.Type


def test_a_watcher_on_one_process_sees_the_changes_made_through_another(database_url, tmp_path):
    alice = bearer("user:alice")
    with (
        service_process("report-service", database_url, tmp_path / "a.log") as writer,
        service_process("report-service", database_url, tmp_path / "b.log") as reader,
        writer.channel() as write_channel,
        reader.channel() as read_channel,
    ):
        stub = report_service_pb2_grpc.ReportServiceStub(write_channel)
        stub.CreateReport(
            report_service_pb2.CreateReportRequest(report=valid_report()), metadata=alice
        )
        watcher = Watcher(read_channel, alice, ORIGINAL)
        assert watcher.next().type == Type.TYPE_SNAPSHOT
        names = [f"Name {index}" for index in range(5)]
        for name in names:
            stub.UpdateReport(
                report_service_pb2.UpdateReportRequest(
                    report=report_pb2.Report(id=ORIGINAL, name=name),
                    update_mask=field_mask_pb2.FieldMask(paths=["name"]),
                ),
                metadata=alice,
            )
        events = watcher.take(5)
        assert [event.report.name for event in events] == names
        assert {event.type for event in events} == {Type.TYPE_REPORT_UPDATED}
        watcher.cancel()


def test_a_cohort_watcher_on_one_process_sees_the_patches_made_through_another(
    database_url, tmp_path
):
    alice = bearer("user:alice")
    with (
        service_process("cohort-service", database_url, tmp_path / "a.log") as writer,
        service_process("cohort-service", database_url, tmp_path / "b.log") as reader,
        writer.channel() as write_channel,
        reader.channel() as read_channel,
    ):
        stub = draft_service_pb2_grpc.CohortDraftServiceStub(write_channel)
        watcher = StreamWatcher(
            draft_service_pb2_grpc.CohortDraftServiceStub(read_channel).WatchCohortDrafts(
                draft_service_pb2.WatchCohortDraftsRequest(), metadata=alice
            )
        )
        assert watcher.next().type == CohortType.TYPE_SYNCED
        draft_id = stub.PatchCohortDraft(
            draft_service_pb2.PatchCohortDraftRequest(name="Name 0"), metadata=alice
        ).draft_id
        names = [f"Name {index}" for index in range(1, 4)]
        for name in names:
            stub.PatchCohortDraft(
                draft_service_pb2.PatchCohortDraftRequest(draft_id=draft_id, name=name),
                metadata=alice,
            )
        events = watcher.take(4)
        assert [e.form_state.name.value for e in events] == ["Name 0", *names]
        assert {e.type for e in events} == {CohortType.TYPE_PATCHED}
        watcher.cancel()


def test_sigterm_ends_open_watches_unavailable_and_the_process_exits_inside_its_grace(
    sqlite_url, tmp_path
):
    alice = bearer("user:alice")
    grace = 10.0
    with (
        service_process(
            "report-service", sqlite_url, tmp_path / "service.log", grace_period=grace
        ) as service,
        service.channel() as channel,
    ):
        report_service_pb2_grpc.ReportServiceStub(channel).CreateReport(
            report_service_pb2.CreateReportRequest(report=valid_report()), metadata=alice
        )
        watchers = [Watcher(channel, alice, ORIGINAL) for _ in range(5)]
        for watcher in watchers:
            assert watcher.next().type == Type.TYPE_SNAPSHOT
        started = time.monotonic()
        assert service.stop(timeout=grace + 5) == 0
        stopped = time.monotonic() - started
        for watcher in watchers:
            error = watcher.ending(timeout=5)
            assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE
            assert reason_of(error) == "SHUTTING_DOWN"
    # The drain's notice (1 s) and the listener's close, not the grace period.
    assert stopped < grace / 2
