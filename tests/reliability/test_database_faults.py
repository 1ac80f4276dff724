"""PostgreSQL lost mid-run: calls fail UNAVAILABLE, the same process recovers, no partial write.

A real report-service process reaches PostgreSQL through a TCP proxy (tests/reliability/
tcp_proxy.py) while client threads write: they create reports (a row and its datasets) and
commit drafts (original, datasets, draft deletion and activity in one transaction). Two
faults, one after the other:

- the link is cut: every open connection dropped, new ones refused (network or server down);
- the service's own backends are terminated (`pg_terminate_backend`, found by the unique
  application_name of its URL): what a restart of PostgreSQL does to its clients. The shared
  server itself is never restarted.

Each phase runs DB_FAULTS_PHASE_SECONDS (default 0.7) of load; raise it for a longer soak:
`DB_FAULTS_PHASE_SECONDS=10 .venv/bin/python -m pytest -q tests/reliability/test_database_faults.py`
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest
from google.protobuf import field_mask_pb2

from report_service.v1 import report_pb2, report_service_pb2, report_service_pb2_grpc
from tests.conftest import POSTGRES_SCHEMA, _postgres_test_url
from tests.processes import service_process
from tests.reliability.tcp_proxy import tcp_proxy
from tests.report_service.support import struct, valid_report
from tests.support import bearer, failure

pytestmark = pytest.mark.postgres

PHASE_SECONDS = float(os.environ.get("DB_FAULTS_PHASE_SECONDS", "0.7"))
RECOVERY_SECONDS = 15  # the service must serve again within this after the database is back
WRITERS = 3


@dataclass
class Outcome:
    phase: str
    code: grpc.StatusCode
    reason: str = ""
    message: str = ""


@dataclass
class Writer:
    """One principal's client: creates reports, and commits drafts of its base report."""

    channel: grpc.Channel
    subject: str
    base: str
    phase: list[str]  # shared, the phase now: read when each call starts
    created: list[str] = field(default_factory=list)  # acknowledged CreateReport ids
    committed: list[int] = field(default_factory=list)  # acknowledged commits' defn["n"]
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stub = report_service_pb2_grpc.ReportServiceStub(self.channel)
        self._metadata = bearer(self.subject)

    def call(self, rpc: str, request) -> object | None:
        phase = self.phase[0]
        try:
            response = getattr(self._stub, rpc)(request, metadata=self._metadata, timeout=10)
        except grpc.RpcError as error:
            details = failure(error)
            self.outcomes.append(Outcome(phase, details.code, details.reason, details.message))
            return None
        self.outcomes.append(Outcome(phase, grpc.StatusCode.OK))
        return response

    def run(self, stop: threading.Event) -> None:
        draft = f"{self.subject}:{self.base.partition(':')[2]}-draft"
        for n in range(1, 100_000):
            if stop.is_set():
                return
            if n % 2:
                report_id = f"{self.base}-{n}"
                if self.call("CreateReport", _create(report_id)) is not None:
                    self.created.append(report_id)
                continue
            # One commit cycle; a step that failed ends it (the next starts with EditReport).
            if (
                self.call("EditReport", report_service_pb2.EditReportRequest(id=self.base))
                and self.call("UpdateReport", _update(draft, n))
                and self.call(
                    "CommitReportDraft", report_service_pb2.CommitReportDraftRequest(id=self.base)
                )
            ):
                self.committed.append(n)


def _create(report_id: str) -> report_service_pb2.CreateReportRequest:
    return report_service_pb2.CreateReportRequest(report=valid_report(id=report_id))


def _update(draft: str, n: int) -> report_service_pb2.UpdateReportRequest:
    return report_service_pb2.UpdateReportRequest(
        report=report_pb2.Report(id=draft, defn=struct({"n": n})),
        update_mask=field_mask_pb2.FieldMask(paths=["defn"]),
    )


def _via(url: str, port: int, application_name: str) -> str:
    """url, reaching PostgreSQL through 127.0.0.1:port, its sessions named application_name."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"
    query = f"{parts.query}&application_name={application_name}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _wait_until(predicate, timeout: float, what: str) -> float:
    """Seconds it took predicate to hold; fails after timeout."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"not within {timeout}s: {what}"
        time.sleep(0.05)
    return time.monotonic() - started


def _ok_in(writers: list[Writer], phase: str) -> bool:
    return any(
        o.phase == phase and o.code == grpc.StatusCode.OK for w in writers for o in list(w.outcomes)
    )


def _rows(admin, sql: str, *params) -> list[tuple]:
    with admin.cursor() as cursor:
        cursor.execute(sql.replace("{schema}", f'"{POSTGRES_SCHEMA}"'), params)
        return cursor.fetchall()


def test_database_outages_fail_calls_unavailable_and_the_process_recovers_by_itself(
    postgres_admin, tmp_path
):
    direct = urlsplit(_postgres_test_url(postgres_admin))
    application_name = f"draft_faults_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with tcp_proxy(direct.hostname or "127.0.0.1", direct.port or 5432) as proxy:
        url = _via(direct.geturl(), proxy.port, application_name)
        with (
            service_process("report-service", url, tmp_path / "service.log") as service,
            service.channel() as channel,
        ):
            phase = ["before"]
            writers = [
                Writer(channel, f"user:w{i}", f"team:faults-{i}", phase) for i in range(WRITERS)
            ]
            for writer in writers:
                assert writer.call("CreateReport", _create(writer.base)) is not None
            stop = threading.Event()
            threads = [threading.Thread(target=w.run, args=(stop,)) for w in writers]
            for thread in threads:
                thread.start()
            try:
                time.sleep(PHASE_SECONDS)
                phase[0] = "cut"
                proxy.cut()
                time.sleep(PHASE_SECONDS)
                phase[0] = "restored"
                proxy.restore()
                recovered_after_cut = _wait_until(
                    lambda: _ok_in(writers, "restored"), RECOVERY_SECONDS, "recovery after cut"
                )
                time.sleep(PHASE_SECONDS)
                phase[0] = "terminated"
                (terminated,) = _rows(
                    postgres_admin,
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = %s",
                    application_name,
                )[0]
                recovered_after_terminate = _wait_until(
                    lambda: _ok_in(writers, "terminated"),
                    RECOVERY_SECONDS,
                    "recovery after terminate",
                )
                time.sleep(PHASE_SECONDS)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(timeout=60)
            pid_at_end = service.process.poll()
            log = service.log()

    outcomes = [o for w in writers for o in w.outcomes]
    print(
        f"\ncalls by phase and code: {Counter((o.phase, o.code.name) for o in outcomes)}"
        f"\nrecovered {recovered_after_cut:.2f}s after the link came back, "
        f"{recovered_after_terminate:.2f}s after {terminated} backends were terminated"
    )
    assert pid_at_end is None, "the service process exited"  # still the same process
    assert terminated > 0
    assert any(o.phase == "cut" and o.code != grpc.StatusCode.OK for o in outcomes)
    failed = [o for o in outcomes if o.code != grpc.StatusCode.OK]
    assert {(o.code, o.reason) for o in failed} == {
        (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")
    }
    assert all("retry" in o.message for o in failed)
    assert "code=INTERNAL" not in log and "unexpected error" not in log
    _assert_acknowledged_and_whole(postgres_admin, writers)


def _assert_acknowledged_and_whole(admin, writers: list[Writer]) -> None:
    """Every acknowledged write is there; every write there is whole."""
    datasets = dict(
        _rows(
            admin,
            "SELECT r.id, count(d.id) FROM {schema}.report r "
            "LEFT JOIN {schema}.report_dataset d ON d.report_id = r.id GROUP BY r.id",
        )
    )
    for writer in writers:
        missing = set(writer.created) - set(datasets)
        assert not missing, f"acknowledged creates missing: {missing}"
    partial = {report_id: count for report_id, count in datasets.items() if count != 2}
    assert not partial, f"reports without their 2 datasets: {partial}"

    for writer in writers:
        applied = [
            json.loads(details)["defn"]["n"]
            for (details,) in _rows(
                admin,
                "SELECT details FROM {schema}.activity WHERE report_id = %s ORDER BY id",
                writer.base,
            )
        ]
        assert set(writer.committed) <= set(applied), "an acknowledged commit is missing"
        ((defn,),) = _rows(admin, "SELECT defn FROM {schema}.report WHERE id = %s", writer.base)
        # The original holds the last applied commit: no commit half-applied.
        assert json.loads(defn).get("n") == (applied[-1] if applied else None)
        drafts = _rows(admin, "SELECT defn FROM {schema}.report WHERE editing_id = %s", writer.base)
        for (draft_defn,) in drafts:
            # A draft that is still there was not committed, or not whole.
            assert json.loads(draft_defn).get("n") not in applied
