"""ReportService: reports, the caller's drafts of them, their activities and view settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from report_service import drafts, fields, mapping, rebase, revisions, store, validation, watching
from report_service.drivers import DriverRegistry
from report_service.models import Report, database, utcnow
from report_service.requests import WRITE
from report_service.v1 import report_pb2, report_service_pb2, report_service_pb2_grpc
from report_service.watching import Type
from shared.auth import current_principal
from shared.budget import check_size, items_within, page_within
from shared.db import read_transaction
from shared.errors import InvalidArgument, Violations
from shared.etags import check_etag
from shared.pagination import decode_page_token, encode_page_token, page_size

# A page token's first element says which list issued it, so that one list's token is
# refused by another instead of being misread.
_REPORTS_PAGE = "reports"
_ACTIVITIES_PAGE = "activities"
_REVISIONS_PAGE = "revisions"


def _checked_id(field: str, value: str) -> str:
    violations = Violations()
    validation.check_report_id(violations, field, value)
    violations.raise_if_any()
    return value


def _cursor(token: str, kind: str, value_type: type):
    """The position a page token of the list `kind` resumes after; None on the first page."""
    cursor = decode_page_token(token)
    if cursor is None:
        return None
    if len(cursor) != 2 or cursor[0] != kind or not isinstance(cursor[1], value_type):
        raise InvalidArgument(
            "page_token is not a token this list issued",
            [("page_token", "must be the next_page_token of the previous page, or empty")],
        )
    return cursor[1]


def _page(estimates: list[tuple], size: int, kind: str, load: Callable[[list], list]):
    """(messages, next_page_token) of a page, bounded by size items and by bytes.

    estimates: (key, estimated bytes) of up to size + 1 rows in list order; load(keys) builds
    the messages of the chosen keys. Rows past the byte budget (shared.budget) are left to
    the next page, first by the estimates (before loading anything), then by the messages.
    """
    count = min(size, items_within(estimate for _, estimate in estimates))
    messages = load([key for key, _ in estimates[:count]])
    kept = page_within(messages)
    if len(estimates) <= kept:
        return messages, ""
    return messages[:kept], encode_page_token([kind, estimates[kept - 1][0]])


class ReportServicer(report_service_pb2_grpc.ReportServiceServicer):
    def __init__(
        self, drivers: DriverRegistry, revisions_kept: int = revisions.REVISIONS_KEPT.default
    ) -> None:
        self._drivers = drivers
        self._revisions_kept = revisions_kept

    # -----------------------------------------------------------------------
    # Reports
    # -----------------------------------------------------------------------

    @WRITE(request_id=True, validate_only=True)
    def CreateReport(self, request, context) -> report_pb2.Report:
        report = request.report
        validation.refuse_long_lists(report, "report")
        validation.check_report_budget(report, "report", fields.EDITABLE)  # before reading it
        violations = Violations()
        validation.check_new_report_id(violations, "report.id", report.id)
        validation.check_type(violations, "report.type", report.type)
        values = mapping.fields_from_message(report, fields.EDITABLE)
        validation.check_fields(violations, "report", values)
        violations.raise_if_any()
        now, principal = utcnow(), current_principal().subject
        row = Report(
            id=report.id,
            type=report.type,
            owner_id=principal,
            editing=None,
            created_at=now,
            defn_updated_at=now,
        )
        store.set_columns(row, values, now)
        with database.atomic():
            store.insert_report(row, values)
            reason = revisions.Reason.REASON_CREATED
            revisions.record(row.id, reason, principal, now, self._revisions_kept)
            created = mapping.report_to_proto(row, values["datasets"])
            watching.report_changed(Type.TYPE_REPORT_CREATED, created, principal)
        return created

    def GetReport(self, request, context) -> report_pb2.Report:
        report_id = _checked_id("id", request.id)
        return store.visible_report_message(report_id, current_principal().subject)

    def ListReports(self, request, context) -> report_service_pb2.ListReportsResponse:
        size = page_size(request.page_size)
        after = _cursor(request.page_token, _REPORTS_PAGE, str)
        with read_transaction(database):

            def load(report_ids: list[str]) -> list[report_pb2.Report]:
                rows = store.reports_by_id(report_ids)
                datasets = store.datasets_of(report_ids)
                return [mapping.report_to_proto(row, datasets[row.id]) for row in rows]

            reports, token = _page(store.originals_page(after, size + 1), size, _REPORTS_PAGE, load)
        return report_service_pb2.ListReportsResponse(reports=reports, next_page_token=token)

    @WRITE(request_id=True, validate_only=True)
    def UpdateReport(self, request, context) -> report_pb2.Report:
        report = request.report
        validation.refuse_long_lists(report, "report")
        violations = Violations()
        validation.check_report_id(violations, "report.id", report.id)
        paths = validation.update_paths(violations, request.update_mask, report)
        validation.check_report_budget(report, "report", paths, only_written=True)
        values = mapping.fields_from_message(report, paths)
        validation.check_fields(violations, "report", values)
        violations.raise_if_any()
        principal = current_principal().subject
        with database.atomic():
            row = store.locked_report(report.id, principal, original_lock=store.EXCLUSIVE)
            check_etag("report.etag", report.etag, row.etag, "the report")
            if values:
                now = utcnow()
                store.update_report(row, values, now)
                if row.editing_id is None:
                    reason = revisions.Reason.REASON_UPDATED
                    revisions.record(row.id, reason, principal, now, self._revisions_kept)
            updated = store.report_message(row)
            validation.check_report_budget(updated, "report", values)  # rolls the update back
            if values and row.editing_id is None:
                watching.report_changed(Type.TYPE_REPORT_UPDATED, updated, principal)
            elif values:
                watching.draft_changed(
                    Type.TYPE_DRAFT_UPDATED, row.editing_id, row.id, principal, draft=updated
                )
            return updated

    @WRITE(request_id=True, validate_only=True)
    def DeleteReport(self, request, context) -> report_service_pb2.DeleteReportResponse:
        report_id = _checked_id("id", request.id)
        principal = current_principal().subject
        with database.atomic():
            row = store.locked_report(report_id, principal, original_lock=store.EXCLUSIVE)
            check_etag("etag", request.etag, row.etag, "the report")
            if row.editing_id is None:
                drafts.delete_original(self._drivers, row)
                watching.report_deleted(row.id, principal)
            else:
                drafts.discard_draft(self._drivers, row)
                watching.draft_changed(Type.TYPE_DRAFT_DISCARDED, row.editing_id, row.id, principal)
        return report_service_pb2.DeleteReportResponse()

    # -----------------------------------------------------------------------
    # Drafts: each takes the id of the original, and works on the caller's draft of it.
    # -----------------------------------------------------------------------

    @WRITE(request_id=True, validate_only=True)
    def EditReport(self, request, context) -> report_pb2.Report:
        report_id = _checked_id("id", request.id)
        principal = current_principal().subject
        with database.atomic():
            original = store.original_report(report_id, principal, lock=store.SHARED)
            draft, created = drafts.edit_report(self._drivers, original, principal, utcnow())
            validation.check_report_budget(draft, "id", ())  # only a driver could grow it
            if created:
                watching.draft_changed(
                    Type.TYPE_DRAFT_CREATED, original.id, draft.id, principal, draft=draft
                )
            return draft

    def GetReportDraft(self, request, context) -> report_pb2.Report:
        report_id = _checked_id("id", request.id)
        principal = current_principal().subject
        with read_transaction(database):
            original = store.original_report(report_id, principal)
            return store.report_message(store.own_draft(original.id, principal))

    @WRITE(request_id=True, validate_only=True)
    def PutReportDraft(self, request, context) -> report_service_pb2.PutReportDraftResponse:
        violations = Violations()
        validation.check_report_id(violations, "id", request.id)
        given = [name for name in fields.DRAFT_INPUT if request.draft.HasField(name)]
        validation.check_report_budget(request.draft, "draft", given, only_written=True)
        overrides = mapping.draft_input_fields(request.draft)
        validation.check_fields(violations, "draft", overrides)
        violations.raise_if_any()
        principal = current_principal().subject
        with database.atomic():
            original = store.original_report(request.id, principal, lock=store.SHARED)
            draft, created = drafts.put_draft(
                self._drivers, original, principal, overrides, utcnow(), request.etag
            )
            validation.check_report_budget(draft, "draft", overrides)
            kind = Type.TYPE_DRAFT_CREATED if created else Type.TYPE_DRAFT_UPDATED
            watching.draft_changed(kind, original.id, draft.id, principal, draft=draft)
        return report_service_pb2.PutReportDraftResponse(report=draft, created=created)

    @WRITE(request_id=True, validate_only=True)
    def DiscardReportDraft(self, request, context) -> report_service_pb2.DiscardReportDraftResponse:
        report_id = _checked_id("id", request.id)
        principal = current_principal().subject
        with database.atomic():
            original = store.original_report(report_id, principal, lock=store.SHARED)
            draft = store.own_draft(original.id, principal, lock=True)
            check_etag("etag", request.etag, draft.etag, "your draft")
            drafts.discard_draft(self._drivers, draft)
            watching.draft_changed(Type.TYPE_DRAFT_DISCARDED, original.id, draft.id, principal)
        return report_service_pb2.DiscardReportDraftResponse()

    @WRITE(request_id=True, validate_only=True)
    def CommitReportDraft(self, request, context) -> report_pb2.Report:
        report_id = _checked_id("id", request.id)
        principal = current_principal().subject
        with database.atomic():
            # Locked first, so that the commit runs wholly before or after any other write of
            # the report or its drafts, and reads what they wrote: the last commit wins whole.
            original = store.original_report(report_id, principal, lock=store.EXCLUSIVE)
            check_etag("etag", request.etag, original.etag, "the original")
            draft = store.own_draft(original.id, principal, lock=True)
            committed = drafts.commit_draft(
                self._drivers, original, draft, principal, utcnow(), self._revisions_kept
            )
            validation.check_report_budget(committed, "id", ())  # only a driver could grow it
            watching.draft_committed(committed, draft.id, principal)
            return committed

    # -----------------------------------------------------------------------
    # Activities and the caller's view settings
    # -----------------------------------------------------------------------

    def ListReportActivities(
        self, request, context
    ) -> report_service_pb2.ListReportActivitiesResponse:
        violations = Violations()
        validation.check_report_id(violations, "report_id", request.report_id)
        violations.raise_if_any()
        size = page_size(request.page_size)
        before = _cursor(request.page_token, _ACTIVITIES_PAGE, int)
        with read_transaction(database):
            store.visible_report(request.report_id, current_principal().subject)
            activities, token = _page(
                store.activities_page(request.report_id, before, size + 1),
                size,
                _ACTIVITIES_PAGE,
                lambda ids: [mapping.activity_to_proto(row) for row in store.activities_by_id(ids)],
            )
        return report_service_pb2.ListReportActivitiesResponse(
            activities=activities, next_page_token=token
        )

    def GetUserReportSettings(self, request, context) -> report_pb2.UserReportSettings:
        report_id = _checked_id("report_id", request.report_id)
        user_id = current_principal().subject
        with read_transaction(database):
            store.visible_report(report_id, user_id)
            row = store.user_settings(report_id, user_id)
        return mapping.user_settings_to_proto(report_id, user_id, row.settings if row else {})

    @WRITE(request_id=True, validate_only=True)
    def UpdateUserReportSettings(self, request, context) -> report_pb2.UserReportSettings:
        report_id = _checked_id("report_id", request.report_id)
        user_id = current_principal().subject
        check_size("settings", "the view settings", request.settings.ByteSize())
        settings = mapping.struct_to_dict(request.settings)
        with database.atomic():
            store.locked_report(report_id, user_id, original_lock=store.SHARED)
            store.put_user_settings(report_id, user_id, settings, utcnow())
        return mapping.user_settings_to_proto(report_id, user_id, settings)

    # -----------------------------------------------------------------------
    # A draft against its original: diff and rebase
    # -----------------------------------------------------------------------

    def DiffReportDraft(self, request, context) -> report_service_pb2.DiffReportDraftResponse:
        report_id = _checked_id("id", request.id)
        principal = current_principal().subject
        with read_transaction(database):
            original = store.original_report(report_id, principal)
            return rebase.diff(original, store.own_draft(original.id, principal))

    @WRITE(request_id=True, validate_only=True)
    def RebaseReportDraft(self, request, context) -> report_service_pb2.RebaseReportDraftResponse:
        report_id = _checked_id("id", request.id)
        principal = current_principal().subject
        with database.atomic():
            original = store.original_report(report_id, principal, lock=store.SHARED)
            draft = store.own_draft(original.id, principal, lock=True)
            check_etag("etag", request.etag, draft.etag, "your draft")
            etag = draft.etag
            rebased = rebase.rebase(self._drivers, original, draft, principal, utcnow())
            validation.check_report_budget(rebased.draft, "id", ())  # only a driver could grow it
            if rebased.draft.etag != etag:  # a draft based on the original now is kept as is
                watching.draft_changed(
                    Type.TYPE_DRAFT_UPDATED, original.id, draft.id, principal, draft=rebased.draft
                )
            return rebased

    # -----------------------------------------------------------------------
    # Revisions of originals
    # -----------------------------------------------------------------------

    def ListReportRevisions(
        self, request, context
    ) -> report_service_pb2.ListReportRevisionsResponse:
        report_id = _checked_id("report_id", request.report_id)
        size = page_size(request.page_size)
        before = _cursor(request.page_token, _REVISIONS_PAGE, int)
        with read_transaction(database):
            store.original_report(report_id, current_principal().subject)
            found, token = _page(
                revisions.page(report_id, before, size + 1),
                size,
                _REVISIONS_PAGE,
                lambda ids: [revisions.message(row) for row in revisions.by_id(ids)],
            )
        return report_service_pb2.ListReportRevisionsResponse(
            revisions=found, next_page_token=token
        )

    def GetReportRevision(self, request, context) -> report_pb2.ReportRevision:
        report_id = _checked_id("report_id", request.report_id)
        revision_id = revisions.check_revision_id("revision_id", request.revision_id)
        with read_transaction(database):
            store.original_report(report_id, current_principal().subject)
            return revisions.message(revisions.find(report_id, revision_id))

    @WRITE(request_id=True, validate_only=True)
    def RollbackReport(self, request, context) -> report_pb2.Report:
        report_id = _checked_id("id", request.id)
        revision_id = revisions.check_revision_id("revision_id", request.revision_id)
        principal = current_principal().subject
        with database.atomic():
            original = store.original_report(report_id, principal, lock=store.EXCLUSIVE)
            check_etag("etag", request.etag, original.etag, "the original")
            revision = revisions.find(report_id, revision_id)
            rolled_back = revisions.rollback(
                original, revision, principal, utcnow(), self._revisions_kept
            )
            validation.check_report_budget(rolled_back, "revision_id", ())
            watching.report_changed(Type.TYPE_REPORT_ROLLED_BACK, rolled_back, principal)
            return rolled_back

    # -----------------------------------------------------------------------
    # Watching
    # -----------------------------------------------------------------------

    def WatchReport(self, request, context) -> Iterator[report_pb2.ReportEvent]:
        report_id = _checked_id("id", request.id)
        return watching.watch(report_id, request.start_after, current_principal().subject)
