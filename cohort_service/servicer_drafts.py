"""CohortDraftService: patch, read, list, delete and watch the caller's cohort drafts."""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf import empty_pb2

from cohort_service import drafts, patches, watching
from cohort_service.v1 import draft_pb2, draft_service_pb2, draft_service_pb2_grpc
from cohort_service.validation import parse_uuid
from cohort_service.writes import WRITE
from shared.auth import current_principal
from shared.errors import Violations
from shared.pagination import decode_page_token, encode_page_token, page_size


def _draft_id(raw: str):
    violations = Violations()
    draft_id = parse_uuid(violations, "draft_id", raw)
    violations.raise_if_any()
    return draft_id


# Methods whose handlers answer their response already serialized (bytes): the form is
# kept as bytes (cohort_service.form_cache), and grpc sends a handler's bytes as they are
# when the method is registered without a response serializer (cohort_service.server).
SERIALIZED_RESPONSES = ("PatchCohortDraft", "GetCohortDraft")


class CohortDraftServicer(draft_service_pb2_grpc.CohortDraftServiceServicer):
    @WRITE(validate_only=True)
    def PatchCohortDraft(self, request, context) -> bytes:  # a PatchCohortDraftResponse
        owner = current_principal().subject
        if patches.is_ack(request):
            return patches.acknowledge(owner, request)
        return patches.patch_draft(owner, request)

    def GetCohortDraft(self, request, context) -> bytes:  # type: ignore[override]  # see above
        return drafts.read_draft(current_principal().subject, _draft_id(request.draft_id))

    def ListCohortDrafts(self, request, context) -> draft_service_pb2.ListCohortDraftsResponse:
        states, cursor = drafts.list_drafts(
            current_principal().subject,
            page_size(request.page_size),
            decode_page_token(request.page_token),
            request.include_dormant,
        )
        return draft_service_pb2.ListCohortDraftsResponse(
            drafts=states, next_page_token=encode_page_token(cursor) if cursor else ""
        )

    @WRITE(validate_only=True)
    def DeleteCohortDraft(self, request, context) -> empty_pb2.Empty:
        drafts.delete_draft(current_principal().subject, _draft_id(request.draft_id))
        return empty_pb2.Empty()

    def WatchCohortDrafts(self, request, context) -> Iterator[draft_pb2.CohortDraftEvent]:
        draft_id = _draft_id(request.draft_id) if request.draft_id else None
        return watching.watch(current_principal().subject, draft_id, request.start_after)
