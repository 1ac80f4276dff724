"""Failpoints: armed only by the test launcher, and every write rolls back whole when one fires."""

from __future__ import annotations

import re
from collections.abc import Iterator

import grpc
import pytest

from cohort_service.server import SERVICE as COHORT
from report_service.server import SERVICE as REPORT
from report_service.v1 import report_service_pb2, report_service_pb2_grpc
from shared import failpoints
from tests.cohort_service.support import Client as CohortClient
from tests.processes import REPO_ROOT, service_process
from tests.report_service.support import Client as ReportClient
from tests.report_service.support import create_changed_draft, valid_report
from tests.support import bearer, serve, snapshot

COMMIT_POINTS = [name for name in failpoints.FAILPOINTS if name.startswith("report.commit.")]
ROLLBACK_POINTS = [name for name in failpoints.FAILPOINTS if name.startswith("report.rollback.")]
PATCH_POINTS = [name for name in failpoints.FAILPOINTS if name.startswith("cohort.patch.")]


@pytest.fixture
def armed() -> Iterator:
    """arm(spec) for the test; everything is disarmed after it."""
    yield failpoints.arm
    failpoints.disarm()


# ---------------------------------------------------------------------------
# Specs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "report.commit.nowhere=kill@0.5",
        "report.commit.after_update",
        "report.commit.after_update=kill@0",
        "report.commit.after_update=kill@1.5",
        "report.commit.after_update=kill#0",
        "report.commit.after_update=explode#1",
    ],
)
def test_a_spec_naming_an_unknown_failpoint_or_a_bad_action_is_refused(spec, armed):
    with pytest.raises(ValueError, match="failpoint spec"):
        armed(spec)


def test_a_failpoint_armed_for_the_nth_hit_fires_on_that_hit_only(armed):
    armed("cohort.ack.after_decision=raise#2")
    failpoints.failpoint("cohort.ack.after_decision")
    with pytest.raises(failpoints.FailpointError):
        failpoints.failpoint("cohort.ack.after_decision")
    failpoints.failpoint("cohort.ack.after_decision")
    failpoints.failpoint("report.commit.after_update")  # not armed


def test_the_same_seed_fires_a_probabilistic_failpoint_on_the_same_hits(armed):
    def fired_hits(seed: int) -> list[int]:
        armed("cohort.patch.after_claim=raise@0.3", seed=seed)
        hits = []
        for hit in range(50):
            try:
                failpoints.failpoint("cohort.patch.after_claim")
            except failpoints.FailpointError:
                hits.append(hit)
        return hits

    assert fired_hits(7) == fired_hits(7)
    assert fired_hits(7) != fired_hits(8)
    assert 0 < len(fired_hits(7)) < 50


# ---------------------------------------------------------------------------
# A failure at any failpoint rolls the whole write back (in-process, `raise`)
# ---------------------------------------------------------------------------


def test_every_report_failpoint_is_in_a_commit_or_a_rollback():
    reported = [name for name in failpoints.FAILPOINTS if name.startswith("report.")]
    assert sorted(reported) == sorted(COMMIT_POINTS + ROLLBACK_POINTS)


@pytest.mark.parametrize("point", COMMIT_POINTS)
def test_a_commit_failing_at_any_failpoint_changes_nothing(point, database_url, armed):
    with serve(REPORT, database_url) as server:
        alice = ReportClient.of(server, "user:alice")
        create_changed_draft(alice.stub, alice.metadata)
        before = snapshot(server.database)
        armed(f"{point}=raise#1")
        with pytest.raises(grpc.RpcError) as caught:
            alice.call("CommitReportDraft", id="team:crash")
        assert caught.value.code() == grpc.StatusCode.INTERNAL
        assert snapshot(server.database) == before
        failpoints.disarm()
        assert alice.call("CommitReportDraft", id="team:crash").name == "Renamed"


@pytest.mark.parametrize("point", ROLLBACK_POINTS)
def test_a_rollback_failing_at_any_failpoint_changes_nothing(point, database_url, armed):
    with serve(REPORT, database_url) as server:
        alice = ReportClient.of(server, "user:alice")
        create_changed_draft(alice.stub, alice.metadata)
        alice.call("CommitReportDraft", id="team:crash")
        first = alice.call("ListReportRevisions", report_id="team:crash").revisions[-1]
        before = snapshot(server.database)
        armed(f"{point}=raise#1")
        with pytest.raises(grpc.RpcError) as caught:
            alice.call("RollbackReport", id="team:crash", revision_id=first.revision_id)
        assert caught.value.code() == grpc.StatusCode.INTERNAL
        assert snapshot(server.database) == before
        failpoints.disarm()
        rolled_back = alice.call("RollbackReport", id="team:crash", revision_id=first.revision_id)
        assert rolled_back.name == valid_report().name


@pytest.mark.parametrize("soft", [False, True], ids=["patch", "soft"])
@pytest.mark.parametrize("point", PATCH_POINTS)
def test_a_patch_failing_at_any_failpoint_changes_nothing_and_keeps_its_key(
    point, soft, database_url, armed
):
    with serve(COHORT, database_url) as server:
        alice = CohortClient(server, bearer("user:alice"))
        draft_id = alice.patch(name="Q1").draft_id
        before = snapshot(server.database)
        armed(f"{point}=raise#1")
        request = {"draft_id": draft_id, "description": "d", "idempotency_key": "k", "soft": soft}
        with pytest.raises(grpc.RpcError) as caught:
            alice.patch(**request)
        assert caught.value.code() == grpc.StatusCode.INTERNAL
        assert snapshot(server.database) == before
        failpoints.disarm()
        # The key was released with the rest: the retry does the work.
        assert alice.patch(**request).form_state.description.value == "d"


def test_an_ack_failing_after_its_decision_changes_nothing(database_url, armed):
    with serve(COHORT, database_url) as server:
        alice = CohortClient(server, bearer("user:alice"))
        draft_id = alice.patch(name="Q1").draft_id
        alice.patch(draft_id=draft_id, description="d", idempotency_key="s", soft=True)
        before = snapshot(server.database)
        armed("cohort.ack.after_decision=raise#1")
        with pytest.raises(grpc.RpcError) as caught:
            alice.patch(idempotency_key="s", accept=True)
        assert caught.value.code() == grpc.StatusCode.INTERNAL
        assert snapshot(server.database) == before
        failpoints.disarm()
        assert alice.patch(idempotency_key="s", accept=True).form_state.revision == 2


# ---------------------------------------------------------------------------
# Processes: the launcher arms, the production entry point does not
# ---------------------------------------------------------------------------

KILL_AT_COMMIT = {"DRAFT_FAILPOINTS": "report.commit.after_update=kill#1"}


def test_no_service_module_arms_a_failpoint_or_reads_the_variable():
    packages = ("shared", "cohort_service", "report_service")
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for package in packages
        for path in (REPO_ROOT / package).rglob("*.py")
        if path.name != "failpoints.py" and re.search(r"\barm\(|DRAFT_FAILPOINTS", path.read_text())
    ]
    assert offenders == []


def test_a_production_process_ignores_the_failpoint_variable(tmp_path):
    url = f"sqlite:///{tmp_path / 'report.db'}"
    with service_process("report-service", url, tmp_path / "log", env=KILL_AT_COMMIT) as running:
        with running.channel() as channel:
            stub = report_service_pb2_grpc.ReportServiceStub(channel)
            metadata = bearer("user:alice")
            create_changed_draft(stub, metadata)
            committed = stub.CommitReportDraft(
                report_service_pb2.CommitReportDraftRequest(id="team:crash"),
                metadata=metadata,
                timeout=10,
            )
        assert committed.name == "Renamed"
        assert running.process.poll() is None
        assert running.stop() == 0
    assert "failpoints armed" not in running.log()


def test_an_armed_process_dies_at_its_failpoint_and_the_commit_is_not_applied(tmp_path):
    url = f"sqlite:///{tmp_path / 'report.db'}"
    metadata = bearer("user:alice")
    spec = KILL_AT_COMMIT["DRAFT_FAILPOINTS"]
    with service_process("report-service", url, tmp_path / "log", failpoints=spec) as running:
        with running.channel() as channel:
            stub = report_service_pb2_grpc.ReportServiceStub(channel)
            create_changed_draft(stub, metadata)
            with pytest.raises(grpc.RpcError) as caught:
                stub.CommitReportDraft(
                    report_service_pb2.CommitReportDraftRequest(id="team:crash"),
                    metadata=metadata,
                    timeout=10,
                )
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert running.process.wait(timeout=10) == -9
    assert "failpoints armed: report.commit.after_update" in running.log()
    with service_process("report-service", url, tmp_path / "log") as restarted:
        with restarted.channel() as channel:
            stub = report_service_pb2_grpc.ReportServiceStub(channel)
            original = stub.GetReport(
                report_service_pb2.GetReportRequest(id="team:crash"), metadata=metadata
            )
            draft = stub.GetReportDraft(
                report_service_pb2.GetReportDraftRequest(id="team:crash"), metadata=metadata
            )
        assert original.name == "Sales Dashboard"
        assert "marker" not in original.defn
        assert [d.dataset_id for d in original.datasets] == ["orders", "customers"]
        assert (draft.name, draft.defn["marker"], len(draft.datasets)) == ("Renamed", "v2", 0)
