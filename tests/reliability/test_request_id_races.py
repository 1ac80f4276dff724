"""Concurrent repeats of one request_id on PostgreSQL, each interleaving forced with a row lock.

The test holds the original report's row (tests.reliability.races): the first commit claims
its request_id and then waits on that lock mid-transaction; the second call with the same id
starts meanwhile and must queue on the claim, not run the commit a second time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from report_service.server import SERVICE as REPORT
from report_service.v1 import report_pb2
from tests.reliability.races import Served, outcome_of, served_on_postgres, until, waiting
from tests.report_service.support import Client, struct

pytestmark = pytest.mark.postgres
OK = grpc.StatusCode.OK


@pytest.fixture(scope="module")
def reports(postgres_admin) -> Iterator[Served]:
    with served_on_postgres(postgres_admin, REPORT, "race_request_ids") as served:
        yield served


def _original(served: Served) -> tuple[Client, str]:
    alice = Client.of(served.running, "user:alice")
    original = f"team:rid-{uuid.uuid4().hex[:10]}"
    alice.create(id=original, name="Before")
    draft = report_pb2.ReportDraftInput(defn=struct({"v": "draft"}))
    alice.call("PutReportDraft", id=original, draft=draft)
    return alice, original


def test_a_repeat_that_waited_on_the_first_call_gets_its_answer_and_commits_nothing(reports):
    alice, original = _original(reports)
    rid = str(uuid.uuid4())

    def commit():
        return alice.call("CommitReportDraft", id=original, request_id=rid)

    race = reports.race(reports.lock("report", "id", original), commit, commit)

    assert race.forced, "the first commit did not wait on the test's lock"
    assert (race.first.code, race.second.code) == (OK, OK), race
    assert race.second.response == race.first.response
    assert len(alice.call("ListReportActivities", report_id=original).activities) == 1


def test_a_different_request_that_waited_on_the_claim_is_refused(reports):
    alice, original = _original(reports)
    rid = str(uuid.uuid4())
    race = reports.race(
        reports.lock("report", "id", original),
        lambda: alice.call("CommitReportDraft", id=original, request_id=rid),
        lambda: alice.call("DiscardReportDraft", id=original, request_id=rid),
    )
    assert race.forced
    assert race.first.code == OK
    assert race.second.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in race.second.details


def test_another_principals_call_with_the_same_id_does_not_wait_on_the_claim(reports):
    alice, original = _original(reports)
    bob = Client.of(reports.running, "user:bob")
    rid = str(uuid.uuid4())
    with ThreadPoolExecutor(1) as pool, reports.lock("report", "id", original):
        held = pool.submit(
            outcome_of, lambda: alice.call("CommitReportDraft", id=original, request_id=rid)
        )
        assert until(lambda: waiting(reports.admin, reports.application_name) >= 1)
        # bob's request_id is the same UUID: his call runs at once, while alice's claim waits
        report = report_pb2.Report(id=f"{original}-bob", type="table", name="Bob's")
        bobs = bob.call("CreateReport", report=report, request_id=rid)
        assert bobs.owner_id == "user:bob"
        assert not held.done()
    assert held.result().code == OK
    assert alice.call("CommitReportDraft", id=original, request_id=rid) == held.result().response
