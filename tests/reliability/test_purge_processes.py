"""The purge inside real service processes, configured from the environment as an operator
does: two replicas on one PostgreSQL database share a backlog of expired drafts, each log
line saying how many it purged, and the lines add up to the backlog: no draft twice, none lost.
"""

from __future__ import annotations

import re
import time

import grpc
import pytest

from report_service.v1 import report_pb2, report_service_pb2, report_service_pb2_grpc
from tests.conftest import POSTGRES_SCHEMA, _postgres_test_url
from tests.processes import service_process
from tests.support import bearer

pytestmark = pytest.mark.postgres
BACKLOG = 30
_PURGED = re.compile(r"purged (\d+) expired report drafts")


def _edit_drafts(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = report_service_pb2_grpc.ReportServiceStub(channel)
        stub.CreateReport(
            report_service_pb2.CreateReportRequest(
                report=report_pb2.Report(id="team:backlog", type="dashboard", name="Backlog")
            ),
            metadata=bearer("user:owner"),
            timeout=30,
        )
        for n in range(BACKLOG):
            stub.EditReport(
                report_service_pb2.EditReportRequest(id="team:backlog"),
                metadata=bearer(f"user:p{n}"),
                timeout=30,
            )


def _purged(log: str) -> int:
    return sum(int(count) for count in _PURGED.findall(log))


def test_two_service_processes_purge_a_backlog_of_expired_drafts_once(postgres_admin, tmp_path):
    schema = f"{POSTGRES_SCHEMA}_purge_processes"
    url = _postgres_test_url(postgres_admin, schema)
    try:
        with service_process("report-service", url, tmp_path / "setup.log") as setup:
            _edit_drafts(setup.address)
            assert setup.stop() == 0
        later = {"REPORT_CLOCK_OFFSET": str(31 * 86_400), "REPORT_PURGE_INTERVAL": "0.05"}
        with (
            service_process("report-service", url, tmp_path / "a.log", env=later) as a,
            service_process("report-service", url, tmp_path / "b.log", env=later) as b,
        ):
            deadline = time.monotonic() + 60
            while _purged(a.log()) + _purged(b.log()) < BACKLOG and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # a few more runs of each: none may purge anything more
            assert a.stop() == 0 and b.stop() == 0
        assert _purged(a.log()) + _purged(b.log()) == BACKLOG, (a.log(), b.log())
        with postgres_admin.cursor() as cursor:
            cursor.execute(f'SELECT count(*) FROM "{schema}".report')
            assert cursor.fetchone()[0] == 1  # the original
    finally:
        with postgres_admin.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
