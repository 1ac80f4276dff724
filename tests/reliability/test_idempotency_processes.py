"""Idempotency across processes: M service processes on one database, M client processes x N
threads firing one identical PatchCohortDraft (or ack) together: one effect, one answer.

Every caller must get OK and the same bytes: rule 8 promises the first response to every
repeat, concurrent ones included, so no retryable code is allowed either. The long run
repeats each burst (fresh principal and key each time), optionally with more threads:

    IDEMPOTENCY_BURSTS=50 IDEMPOTENCY_THREADS=16 .venv/bin/python -m pytest \
        tests/reliability/test_idempotency_processes.py
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from cohort_service.v1 import draft_service_pb2, draft_service_pb2_grpc
from tests.conftest import _postgres_test_url
from tests.processes import ServiceProcess, start_service
from tests.reliability.burst import Burst
from tests.support import bearer

SERVICE_PROCESSES = 3  # M service processes, and M client processes
THREADS = int(os.environ.get("IDEMPOTENCY_THREADS", "8"))  # N threads per client process
BURSTS = range(int(os.environ.get("IDEMPOTENCY_BURSTS", "1")))
PATCH = "/cohort_service.v1.CohortDraftService/PatchCohortDraft"

Request = draft_service_pb2.PatchCohortDraftRequest
Response = draft_service_pb2.PatchCohortDraftResponse


@dataclass
class Cluster:
    services: list[ServiceProcess]
    burst: Burst
    channel: grpc.Channel

    @property
    def addresses(self) -> list[str]:
        return [service.address for service in self.services]

    def stub(self) -> draft_service_pb2_grpc.CohortDraftServiceStub:
        return draft_service_pb2_grpc.CohortDraftServiceStub(self.channel)

    def fire(self, request: Request, metadata) -> list[bytes]:
        """Fire request from every client thread; assert each got OK; the answers, canonical."""
        results = self.burst.fire(self.addresses, PATCH, request.SerializeToString(), metadata)
        assert len(results) == SERVICE_PROCESSES * THREADS
        failures = [(code, details) for code, details in results if code != "OK"]
        assert failures == []
        return [
            Response.FromString(body).SerializeToString(deterministic=True) for _, body in results
        ]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def cluster(request, tmp_path_factory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("idempotency")
    if request.param == "sqlite":
        url = f"sqlite:///{directory / 'cohort.db'}"
    else:
        url = _postgres_test_url(request.getfixturevalue("postgres_admin"))
    services: list[ServiceProcess] = []
    burst = Burst(SERVICE_PROCESSES, THREADS)
    try:
        for index in range(SERVICE_PROCESSES):  # one after the other: the first migrates
            services.append(
                start_service("cohort-service", url, directory / f"service-{index}.log")
            )
        with grpc.insecure_channel(services[0].address) as channel:
            yield Cluster(services, burst, channel)
    finally:
        burst.close()
        for service in services:
            service.kill()


def _principal() -> list[tuple[str, str]]:
    """A principal of its own for each test, so that its drafts are the test's alone."""
    return bearer(f"user:burst-{uuid.uuid4().hex[:8]}", ("cohort:read", "cohort:write"))


def _key() -> str:
    return f"burst-{uuid.uuid4()}"


def test_one_create_fired_from_every_process_makes_one_draft_and_one_answer(cluster):
    for _ in BURSTS:
        metadata = _principal()
        answers = cluster.fire(
            Request(name="Q1", description="d", idempotency_key=_key()), metadata
        )
        assert len(set(answers)) == 1
        first = Response.FromString(answers[0])
        drafts = cluster.stub().ListCohortDrafts(
            draft_service_pb2.ListCohortDraftsRequest(include_dormant=True), metadata=metadata
        )
        assert [draft.draft_id for draft in drafts.drafts] == [first.draft_id]
        assert drafts.drafts[0].revision == 1


def test_one_patch_fired_from_every_process_advances_the_revision_once(cluster):
    for _ in BURSTS:
        metadata = _principal()
        draft_id = cluster.stub().PatchCohortDraft(Request(name="Q1"), metadata=metadata).draft_id
        request = Request(draft_id=draft_id, description="once", idempotency_key=_key())
        answers = cluster.fire(request, metadata)
        assert len(set(answers)) == 1
        assert Response.FromString(answers[0]).form_state.revision == 2
        draft = cluster.stub().GetCohortDraft(
            draft_service_pb2.GetCohortDraftRequest(draft_id=draft_id), metadata=metadata
        )
        assert (draft.revision, draft.description.value) == (2, "once")


def test_one_soft_patch_fired_from_every_process_stages_one_proposal(cluster):
    for _ in BURSTS:
        metadata = _principal()
        draft_id = cluster.stub().PatchCohortDraft(Request(name="Q1"), metadata=metadata).draft_id
        key = _key()
        answers = cluster.fire(
            Request(draft_id=draft_id, description="maybe", soft=True, idempotency_key=key),
            metadata,
        )
        assert len(set(answers)) == 1
        draft = cluster.stub().GetCohortDraft(
            draft_service_pb2.GetCohortDraftRequest(draft_id=draft_id), metadata=metadata
        )
        assert [proposal.idempotency_key for proposal in draft.proposals] == [key]
        assert (draft.revision, draft.description.value) == (1, "")


def test_one_accept_fired_from_every_process_applies_the_proposal_once(cluster):
    for _ in BURSTS:
        metadata = _principal()
        stub = cluster.stub()
        draft_id = stub.PatchCohortDraft(Request(name="Q1"), metadata=metadata).draft_id
        key = _key()
        stub.PatchCohortDraft(
            Request(draft_id=draft_id, description="accepted", soft=True, idempotency_key=key),
            metadata=metadata,
        )
        answers = cluster.fire(Request(idempotency_key=key, accept=True), metadata)
        assert len(set(answers)) == 1
        assert Response.FromString(answers[0]).message == "proposal accepted"
        draft = stub.GetCohortDraft(
            draft_service_pb2.GetCohortDraftRequest(draft_id=draft_id), metadata=metadata
        )
        assert (draft.revision, draft.description.value, len(draft.proposals)) == (2, "accepted", 0)


def test_one_reject_fired_from_every_process_deletes_the_dormant_draft_once(cluster):
    for _ in BURSTS:
        metadata = _principal()
        stub = cluster.stub()
        key = _key()
        staged = stub.PatchCohortDraft(
            Request(name="Q1", soft=True, idempotency_key=key), metadata=metadata
        )
        answers = cluster.fire(Request(idempotency_key=key, accept=False), metadata)
        assert len(set(answers)) == 1
        assert Response.FromString(answers[0]).draft_id == staged.draft_id
        drafts = stub.ListCohortDrafts(
            draft_service_pb2.ListCohortDraftsRequest(include_dormant=True), metadata=metadata
        )
        assert list(drafts.drafts) == []
