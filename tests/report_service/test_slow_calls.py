"""Calls stuck in a report driver hook do not stop health checks and other calls (issue 10)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from report_service.v1 import report_service_pb2, report_service_pb2_grpc
from shared.server import LIMITS
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
