"""Replicas purging one PostgreSQL database at once: no row purged twice, none left behind.

Each "replica" is a store instance of its own: a thread with its own connection running the
service's purge function, as each process's Purger does (shared.purge). Both race through a
backlog in small batches (the free race); then a row the test holds locked shows that a purge
skips a row another transaction holds instead of waiting for it (the forced interleaving).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

import grpc
import pytest

from cohort_service.models import Draft, Proposal, ProposalDecision
from cohort_service.purges import reject_expired
from cohort_service.server import SERVICE as COHORT
from report_service.drivers import DriverRegistry
from report_service.models import Report, RequestRecord
from report_service.purges import purge_drafts
from report_service.requests import REQUEST_IDS
from report_service.server import SERVICE as REPORT
from shared.clock import utcnow
from tests.cohort_service.support import Client as CohortClient
from tests.reliability.races import Served, row_locked, served_on_postgres
from tests.report_service.support import Client, valid_report
from tests.support import bearer

pytestmark = pytest.mark.postgres
BACKLOG = 24
BATCH = 3  # many runs each, so that the two replicas interleave


class Recorder:
    """A driver that records each draft whose discard hook ran."""

    def __init__(self) -> None:
        self.discarded: list[str] = []
        self._lock = threading.Lock()

    def before_discard_draft(self, draft) -> None:
        time.sleep(0.001)  # a hook takes time: the other replica runs meanwhile
        with self._lock:
            self.discarded.append(draft.id)


def _replicas(served: Served, purge: Callable[[], int]) -> list[int]:
    """Two replicas purging until they find nothing; how many each purged per run."""
    runs: list[int] = []
    start = threading.Barrier(2)

    def replica() -> None:
        start.wait()
        try:
            while count := purge():
                runs.append(count)
        finally:
            served.running.database.close()  # this thread's connection, back to the pool

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return runs


def _within(seconds: float, purge: Callable[[], int]) -> int | None:
    """purge()'s count, run on a thread of its own; None if it took longer than seconds."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(purge()), daemon=True)
    thread.start()
    thread.join(seconds)
    return result[0] if result else None


@pytest.fixture
def reports(postgres_admin) -> Iterator[Served]:
    with served_on_postgres(postgres_admin, REPORT, "purge_reports") as served:
        yield served


@pytest.fixture
def cohorts(postgres_admin) -> Iterator[Served]:
    with served_on_postgres(postgres_admin, COHORT, "purge_cohorts") as served:
        yield served


def _drafts(served: Served) -> list[str]:
    Client.of(served.running, "user:owner").create()
    return [
        Client.of(served.running, f"user:p{n}").call("EditReport", id="team:sales-dashboard").id
        for n in range(BACKLOG)
    ]


def test_replicas_purging_expired_drafts_at_once_run_each_hook_once(reports):
    drafts = _drafts(reports)
    recorder = Recorder()
    drivers = DriverRegistry({"dashboard": recorder})
    later = utcnow() + timedelta(days=31)

    runs = _replicas(reports, lambda: purge_drafts(drivers, later, BATCH))

    assert sorted(recorder.discarded) == sorted(drafts)  # each hook once, none missed
    assert sum(runs) == BACKLOG
    assert Report.select().where(Report.editing.is_null(False)).count() == 0
    assert Report.select().count() == 1  # the original


def test_a_purge_skips_a_draft_another_transaction_holds_and_takes_it_later(reports):
    drafts = _drafts(reports)
    drivers = DriverRegistry({})
    later = utcnow() + timedelta(days=31)
    with row_locked(reports.schema, "report", "id = %s", (drafts[0],)) as held:
        assert held is not None
        # it skips the row instead of waiting for it (a wait would outlast the timeout)
        assert _within(10, lambda: purge_drafts(drivers, later, BACKLOG)) == BACKLOG - 1
    assert [r.id for r in Report.select().where(Report.editing.is_null(False))] == [drafts[0]]
    assert purge_drafts(drivers, later, BACKLOG) == 1


def test_replicas_purging_request_ids_at_once_delete_each_once(reports):
    alice = Client.of(reports.running, "user:alice")
    for n in range(BACKLOG):
        report = valid_report(id=f"team:r{n}")
        alice.call("CreateReport", report=report, request_id=str(uuid.uuid4()))
    later = utcnow() + timedelta(days=1, minutes=1)
    with row_locked(reports.schema, "request_record", "TRUE LIMIT 1", ()) as held:
        assert held is not None
        # the held record is skipped: the other replica-to-be takes the rest
        assert _within(10, lambda: REQUEST_IDS.purge(later, 86_400, BACKLOG)) == BACKLOG - 1
    assert RequestRecord.select().count() == 1
    for n in range(BACKLOG):
        alice.call("DeleteReport", id=f"team:r{n}", request_id=str(uuid.uuid4()))
    runs = _replicas(reports, lambda: REQUEST_IDS.purge(later, 86_400, BATCH))
    assert sum(runs) == BACKLOG + 1
    assert RequestRecord.select().count() == 0


def test_replicas_rejecting_expired_proposals_at_once_decide_each_once(cohorts):
    alice = CohortClient(cohorts.running, bearer("user:alice"))
    dormant = {
        alice.patch(name=f"Proposed {n}", soft=True, idempotency_key=f"k{n}").draft_id
        for n in range(BACKLOG)
    }
    active = alice.patch(name="Live").draft_id
    alice.patch(draft_id=active, description="p", soft=True, idempotency_key="on-live")
    later = utcnow() + timedelta(days=8)

    runs = _replicas(cohorts, lambda: reject_expired(later, BATCH))

    assert sum(runs) == BACKLOG + 1
    decisions = {p.key: p.decision for p in Proposal.select()}
    assert set(decisions.values()) == {ProposalDecision.EXPIRED}
    assert {str(d.id) for d in Draft.select()} == {active}
    assert not dormant & {str(d.id) for d in Draft.select()}


def test_an_ack_waiting_on_the_purge_that_expires_its_proposal_is_refused_cleanly(cohorts):
    alice = CohortClient(cohorts.running, bearer("user:alice"))
    active = alice.patch(name="Live").draft_id
    alice.patch(draft_id=active, description="proposed", soft=True, idempotency_key="on-live")
    later = utcnow() + timedelta(days=8)

    # The purge locks the draft, then waits on the proposal the test holds; the ack then waits
    # on the draft the purge holds; the test lets go: the purge decides, the ack comes second.
    race = cohorts.race(
        cohorts.lock("proposal", "key", "on-live"),
        lambda: reject_expired(later, BACKLOG),
        lambda: alice.patch(idempotency_key="on-live", accept=True),
    )

    assert race.forced
    assert (race.first.code, race.first.response) == (grpc.StatusCode.OK, 1)
    assert race.second.code == grpc.StatusCode.FAILED_PRECONDITION  # PROPOSAL_EXPIRED
    assert [p.decision for p in Proposal.select()] == [ProposalDecision.EXPIRED]
    assert alice.get(active).revision == 1  # the expired proposal was not applied
