"""Calls stuck in a report driver hook do not stop health checks and other calls (issue 10)."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from report_service.v1 import report_service_pb2, report_service_pb2_grpc
from shared.server import LIMITS
from tests.reliability.races import until
from tests.reliability.streams import assert_still_answering, held
from tests.report_service.support import valid_report
from tests.support import RunningService, bearer

ORIGINAL = "team:sales-dashboard"


def _stub(server: RunningService):
    return report_service_pb2_grpc.ReportServiceStub(server.channel)


BLOCKING_DRIVER = """
    import time
    from pathlib import Path

    RELEASE = Path({release!r})

    class Driver:
        def before_create_draft(self, original, draft):
            while not RELEASE.exists():  # a hook stuck on something outside the service
                time.sleep(0.02)
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_calls_stuck_in_a_driver_hook_leave_health_and_calls_answering(
    serve_with_driver, tmp_path: Path
):
    release = tmp_path / "release"
    stuck = LIMITS.calls - 1
    with serve_with_driver(BLOCKING_DRIVER.format(release=str(release))) as server, held() as c:
        _stub(server).CreateReport(
            report_service_pb2.CreateReportRequest(report=valid_report(id=ORIGINAL)),
            metadata=bearer(),
        )
        try:
            for index in range(stuck):  # one in the hook, the rest queued for the write lock
                c.add(
                    _stub(server).EditReport.future(
                        report_service_pb2.EditReportRequest(id=ORIGINAL),
                        metadata=bearer(f"user:u{index}"),
                        timeout=60,
                    )
                )
            time.sleep(0.5)
            assert_still_answering(server.channel, _get(server))
        finally:
            release.touch()


def _get(server: RunningService):
    request = report_service_pb2.GetReportRequest(id=ORIGINAL)
    return lambda timeout: _stub(server).GetReport(request, metadata=bearer(), timeout=timeout)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_writes_queued_behind_a_stuck_hook_leave_at_their_deadline(
    serve_with_driver, tmp_path: Path
):
    """SQLite's writers queue in the process; one queued past its client's deadline kept its
    calls lane slot until the writer ahead of it ended, so that a lane's worth of short calls
    behind one stuck hook left every later call RESOURCE_EXHAUSTED (on PostgreSQL the
    statement_timeout ends such a wait)."""
    release = tmp_path / "release"
    with serve_with_driver(BLOCKING_DRIVER.format(release=str(release))) as server, held() as c:
        _stub(server).CreateReport(
            report_service_pb2.CreateReportRequest(report=valid_report(id=ORIGINAL)),
            metadata=bearer(),
        )
        try:
            c.add(
                _stub(server).EditReport.future(
                    report_service_pb2.EditReportRequest(id=ORIGINAL),
                    metadata=bearer("user:in-the-hook"),
                    timeout=60,
                )
            )
            behind = [
                _stub(server).EditReport.future(
                    report_service_pb2.EditReportRequest(id=ORIGINAL),
                    metadata=bearer(f"user:u{index}"),
                    timeout=1,
                )
                for index in range(LIMITS.calls)
            ]
            codes = {call.exception().code() for call in behind}
            assert codes <= {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}

            assert until(lambda: _answers(_get(server))), "the calls lane stayed full"
        finally:
            release.touch()


def _answers(call) -> bool:
    try:
        call(timeout=2)
        return True
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
        return False
