"""Helpers of the cohort-service tests: a client bound to one principal, error details."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc

from cohort_service.form_cache import SerializedForm
from cohort_service.models import Draft, Proposal, ProposalDecision, database
from cohort_service.v1 import (
    catalog_service_pb2_grpc,
    draft_pb2,
    draft_service_pb2,
    draft_service_pb2_grpc,
)
from tests.support import RunningService, failure


@dataclass
class Client:
    """Stubs and the call metadata of one principal."""

    server: RunningService
    metadata: list[tuple[str, str]]

    @property
    def catalog(self) -> catalog_service_pb2_grpc.CohortCatalogServiceStub:
        return catalog_service_pb2_grpc.CohortCatalogServiceStub(self.server.channel)

    @property
    def drafts(self) -> draft_service_pb2_grpc.CohortDraftServiceStub:
        return draft_service_pb2_grpc.CohortDraftServiceStub(self.server.channel)

    def patch(self, **fields) -> draft_service_pb2.PatchCohortDraftResponse:
        return self.drafts.PatchCohortDraft(
            draft_service_pb2.PatchCohortDraftRequest(**fields), metadata=self.metadata
        )

    def get(self, draft_id: str) -> draft_pb2.DraftFormState:
        return self.drafts.GetCohortDraft(
            draft_service_pb2.GetCohortDraftRequest(draft_id=draft_id), metadata=self.metadata
        )

    def list(self, **fields) -> draft_service_pb2.ListCohortDraftsResponse:
        return self.drafts.ListCohortDrafts(
            draft_service_pb2.ListCohortDraftsRequest(**fields), metadata=self.metadata
        )

    def delete(self, draft_id: str) -> None:
        self.drafts.DeleteCohortDraft(
            draft_service_pb2.DeleteCohortDraftRequest(draft_id=draft_id), metadata=self.metadata
        )


def forget_form_cache(draft_id: str) -> None:
    """Clear a draft's stored form bytes, as a draft written before migration 0006 has none:
    reads then build its form from its links and their rows."""
    with database.atomic():
        Draft.update(form_cache=None).where(Draft.id == uuid.UUID(draft_id)).execute()


def _row(draft_id: str) -> Draft:
    return Draft.get_by_id(uuid.UUID(draft_id))


def assert_current(client: Client, draft_id: str) -> draft_pb2.DraftFormState:
    """The draft's stored bytes are of its revision and serve what its links give; the
    served form."""
    row = _row(draft_id)
    assert SerializedForm.decode(row.form_cache, row.revision) is not None, "bytes not current"
    pending = Proposal.select().where(
        (Proposal.draft_id == row.id) & (Proposal.decision == ProposalDecision.PENDING)
    )
    assert row.staged_proposals == pending.count(), "staged_proposals not counted"
    served = client.get(draft_id)
    listed = _listed(client, draft_id)
    forget_form_cache(draft_id)
    try:
        rebuilt = client.get(draft_id)
    finally:
        with database.atomic():  # back as they were: the next write starts from them
            Draft.update(form_cache=row.form_cache).where(Draft.id == row.id).execute()
    assert served == rebuilt
    assert listed == served
    return served


def _listed(client: Client, draft_id: str) -> draft_pb2.DraftFormState:
    token = ""
    while True:
        page = client.list(include_dormant=True, page_size=100, page_token=token)
        for listed in page.drafts:
            if listed.draft_id == draft_id:
                return listed
        token = page.next_page_token
        assert token, f"{draft_id} is not listed"


def details(error: grpc.RpcError) -> tuple[str, dict[str, str]]:
    """(ErrorInfo reason, {field: description} of the BadRequest) of a failed call."""
    found = failure(error)
    return found.reason, dict(found.violations)
