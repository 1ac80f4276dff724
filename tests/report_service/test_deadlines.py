"""A commit the client stopped waiting for changes nothing; contention is retried in the service.

grpc's sync server runs a handler to its end even after the client's deadline passed. These
tests make a real CommitReportDraft slow — a driver hook that sleeps, or a row lock held by
another transaction — and check what reached the database once the server-side call ended
(its access-log line says when).
"""

from __future__ import annotations

import logging
import threading

import grpc
import pytest
from prometheus_client import CollectorRegistry

from report_service.v1 import report_pb2, report_service_pb2
from shared.calls import ATTEMPTS
from shared.metrics import recording
from tests.conftest import _postgres_test_url
from tests.report_service.support import Client, report_row_locked, struct
from tests.support import RunningService, failure, snapshot, watch_log

ORIGINAL = "team:sales-dashboard"
JOHNS_DRAFT = "user:john.doe:sales-dashboard-draft"
CLIENT_DEADLINE = 0.3  # seconds
ON_POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)

SLOW_DRIVER = """
    import logging
    import time

    class Driver:
        def after_commit_draft(self, original, draft, changes):
            logging.getLogger("tests.slow_driver").warning("commit hook sleeping")
            time.sleep(1.0)  # well past the client's deadline
"""


def _draft_ready(server: RunningService) -> Client:
    """John's changed draft of ORIGINAL, beside view settings that a commit would remove."""
    john, alice = Client.of(server, "user:john.doe"), Client.of(server, "user:alice")
    john.create()
    john.call("EditReport", id=ORIGINAL)
    john.call(
        "UpdateReport", report=report_pb2.Report(id=JOHNS_DRAFT, name="New", defn=struct({"v": 2}))
    )
    for client in (john, alice):
        client.call("UpdateUserReportSettings", report_id=ORIGINAL, settings=struct({"z": 1}))
    return john


def test_a_commit_whose_deadline_passed_in_a_driver_hook_rolls_back(serve_with_driver):
    with serve_with_driver(SLOW_DRIVER) as server, watch_log("shared.access") as access:
        john = _draft_ready(server)
        before = snapshot(server.database)

        with pytest.raises(grpc.RpcError) as caught:
            john.call("CommitReportDraft", id=ORIGINAL, timeout=CLIENT_DEADLINE)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        # The handler went on after the client gave up; once it ended, nothing has changed:
        # original as it was, draft still there, no activity, everyone's settings kept.
        line = access.wait_for("method=/report_service.v1.ReportService/CommitReportDraft")
        assert "code=DEADLINE_EXCEEDED" in line
        assert snapshot(server.database) == before


def test_a_commit_cancelled_by_its_client_during_a_driver_hook_rolls_back(serve_with_driver):
    with (
        serve_with_driver(SLOW_DRIVER) as server,
        watch_log("shared.access") as access,
        watch_log("tests.slow_driver", logging.WARNING) as hook,
    ):
        john = _draft_ready(server)
        before = snapshot(server.database)

        call = john.stub.CommitReportDraft.future(
            report_service_pb2.CommitReportDraftRequest(id=ORIGINAL), metadata=john.metadata
        )
        hook.wait_for("commit hook sleeping")  # the server is inside the call's transaction
        call.cancel()

        line = access.wait_for("method=/report_service.v1.ReportService/CommitReportDraft")
        assert call.cancelled()
        assert "code=DEADLINE_EXCEEDED" in line  # refused at COMMIT: "deadline passed or cancelled"
        assert snapshot(server.database) == before


@ON_POSTGRES
def test_a_statement_waiting_on_a_lock_is_cancelled_at_the_calls_deadline(serve_with_driver):
    # No lock_timeout: only the statement_timeout bound to the deadline can end the wait.
    with serve_with_driver("class Driver: pass") as server:
        john = _draft_ready(server)
        before = snapshot(server.database)
        with watch_log("shared.access") as access, report_row_locked(ORIGINAL):
            with pytest.raises(grpc.RpcError) as caught:
                john.call("CommitReportDraft", id=ORIGINAL, timeout=CLIENT_DEADLINE)
            # Still holding the lock: the server's call ended by itself.
            line = access.wait_for("CommitReportDraft", timeout=10)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "code=DEADLINE_EXCEEDED" in line
        assert snapshot(server.database) == before


@ON_POSTGRES
def test_a_commit_that_met_a_lock_timeout_is_retried_in_the_service(
    serve_with_driver, postgres_admin
):
    url = _postgres_test_url(postgres_admin, lock_timeout=300)
    with serve_with_driver("class Driver: pass", url=url) as server:
        john = _draft_ready(server)
        result: dict = {}
        with watch_log("shared.calls") as retries:
            with report_row_locked(ORIGINAL):
                caller = threading.Thread(
                    target=lambda: result.update(
                        report=john.call("CommitReportDraft", id=ORIGINAL, timeout=30)
                    )
                )
                caller.start()
                retries.wait_for("retrying", timeout=10)  # the first attempt met the lock
            caller.join(timeout=30)

        assert result["report"].name == "New"
        assert "LockNotAvailable" in retries.matching("retrying")[0]
        with pytest.raises(grpc.RpcError) as caught:
            john.call("GetReportDraft", id=ORIGINAL)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # committed: the draft is gone


@ON_POSTGRES
def test_a_commit_whose_lock_stays_taken_fails_retryably_after_bounded_retries(
    serve_with_driver, postgres_admin
):
    url = _postgres_test_url(postgres_admin, lock_timeout=100)
    with serve_with_driver("class Driver: pass", url=url) as server:
        john = _draft_ready(server)
        before = snapshot(server.database)
        registry = CollectorRegistry()
        with (
            recording(registry),
            watch_log("shared.calls") as retries,
            report_row_locked(ORIGINAL),
            pytest.raises(grpc.RpcError) as caught,
        ):
            john.call("CommitReportDraft", id=ORIGINAL, timeout=30)

        error = failure(caught.value)
        assert (error.code, error.reason) == (grpc.StatusCode.ABORTED, "DATABASE_CONTENTION")
        assert "retry" in error.message
        assert len(retries.matching("retrying")) == ATTEMPTS - 1
        assert snapshot(server.database) == before
        counted = [
            registry.get_sample_value(name)
            for name in ("db_transaction_retries_total", "db_transaction_contention_aborts_total")
        ]
        assert counted == [ATTEMPTS - 1, 1]
