"""ReportService: reports, the caller's drafts of them, their activities and view settings."""

from __future__ import annotations

from operator import attrgetter

from report_service import drafts, fields, mapping, store, validation
from report_service.drivers import DriverRegistry
from report_service.models import Report, database, utcnow
from report_service.v1 import report_pb2, report_service_pb2, report_service_pb2_grpc
from shared.auth import current_principal
from shared.db import read_transaction
from shared.errors import InvalidArgument, Violations
from shared.pagination import decode_page_token, encode_page_token, page_size

# A page token's first element says which list issued it, so that one list's token is
# refused by another instead of being misread.
_REPORTS_PAGE = "reports"
_ACTIVITIES_PAGE = "activities"
_ID = attrgetter("id")


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


def _page(rows: list, size: int, kind: str, key) -> tuple[list, str]:
    """The page's rows and the token of the next page ("" on the last)."""
    if len(rows) <= size:
        return rows, ""
    rows = rows[:size]
    return rows, encode_page_token([kind, key(rows[-1])])


class ReportServicer(report_service_pb2_grpc.ReportServiceServicer):
    def __init__(self, drivers: DriverRegistry) -> None:
        self._drivers = drivers

    # -----------------------------------------------------------------------
    # Reports
    # -----------------------------------------------------------------------

    def CreateReport(self, request, context) -> report_pb2.Report:
        report = request.report
        validation.refuse_long_lists(report, "report")
        violations = Violations()
        validation.check_report_id(violations, "report.id", report.id)
        validation.check_type(violations, "report.type", report.type)
        values = mapping.fields_from_message(report, fields.EDITABLE)
        validation.check_fields(violations, "report", values)
        violations.raise_if_any()
        now = utcnow()
        row = Report(
            id=report.id,
            type=report.type,
            owner_id=current_principal().subject,
            editing=None,
            created_at=now,
            defn_updated_at=now,
        )
        store.set_columns(row, values, now)
        with database.atomic():
            store.insert_report(row, values)
        return mapping.report_to_proto(row, values["datasets"])

    def GetReport(self, request, context) -> report_pb2.Report:
        report_id = _checked_id("id", request.id)
        return store.visible_report_message(report_id, current_principal().subject)

    def ListReports(self, request, context) -> report_service_pb2.ListReportsResponse:
        size = page_size(request.page_size)
        after = _cursor(request.page_token, _REPORTS_PAGE, str)
        with read_transaction(database):
            rows, token = _page(store.originals_page(after, size + 1), size, _REPORTS_PAGE, _ID)
            datasets = store.datasets_of([row.id for row in rows])
        return report_service_pb2.ListReportsResponse(
            reports=[mapping.report_to_proto(row, datasets[row.id]) for row in rows],
            next_page_token=token,
        )

    def UpdateReport(self, request, context) -> report_pb2.Report:
        report = request.report
        validation.refuse_long_lists(report, "report")
        violations = Violations()
        validation.check_report_id(violations, "report.id", report.id)
        paths = validation.update_paths(violations, request.update_mask, report)
        values = mapping.fields_from_message(report, paths)
        validation.check_fields(violations, "report", values)
        violations.raise_if_any()
        with database.atomic():
            row = store.locked_report(
                report.id, current_principal().subject, original_lock=store.EXCLUSIVE
            )
            if values:
                store.update_report(row, values, utcnow())
            return store.report_message(row)

    def DeleteReport(self, request, context) -> report_service_pb2.DeleteReportResponse:
        report_id = _checked_id("id", request.id)
        with database.atomic():
            row = store.locked_report(
                report_id, current_principal().subject, original_lock=store.EXCLUSIVE
            )
            if row.editing_id is None:
                drafts.delete_original(self._drivers, row)
            else:
                drafts.discard_draft(self._drivers, row)
        return report_service_pb2.DeleteReportResponse()

    # -----------------------------------------------------------------------
    # Drafts: each takes the id of the original, and works on the caller's draft of it.
    # -----------------------------------------------------------------------

    def EditReport(self, request, context) -> report_pb2.Report:
        report_id = _checked_id("id", request.id)
        principal = current_principal().subject
        with database.atomic():
            original = store.original_report(report_id, principal, lock=store.SHARED)
            return drafts.edit_report(self._drivers, original, principal, utcnow())

    def GetReportDraft(self, request, context) -> report_pb2.Report:
        report_id = _checked_id("id", request.id)
        principal = current_principal().subject
        with read_transaction(database):
            original = store.original_report(report_id, principal)
            return store.report_message(store.own_draft(original.id, principal))

    def PutReportDraft(self, request, context) -> report_service_pb2.PutReportDraftResponse:
        violations = Violations()
        validation.check_report_id(violations, "id", request.id)
        overrides = mapping.draft_input_fields(request.draft)
        validation.check_fields(violations, "draft", overrides)
        violations.raise_if_any()
        principal = current_principal().subject
        with database.atomic():
            original = store.original_report(request.id, principal, lock=store.SHARED)
            draft, created = drafts.put_draft(
                self._drivers, original, principal, overrides, utcnow()
            )
        return report_service_pb2.PutReportDraftResponse(report=draft, created=created)

    def DiscardReportDraft(self, request, context) -> report_service_pb2.DiscardReportDraftResponse:
        report_id = _checked_id("id", request.id)
        principal = current_principal().subject
        with database.atomic():
            original = store.original_report(report_id, principal, lock=store.SHARED)
            drafts.discard_draft(self._drivers, store.own_draft(original.id, principal, lock=True))
        return report_service_pb2.DiscardReportDraftResponse()

    def CommitReportDraft(self, request, context) -> report_pb2.Report:
        report_id = _checked_id("id", request.id)
        principal = current_principal().subject
        with database.atomic():
            # Locked first, so that the commit runs wholly before or after any other write of
            # the report or its drafts, and reads what they wrote: the last commit wins whole.
            original = store.original_report(report_id, principal, lock=store.EXCLUSIVE)
            draft = store.own_draft(original.id, principal, lock=True)
            return drafts.commit_draft(self._drivers, original, draft, principal, utcnow())

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
            rows, token = _page(
                store.activities_page(request.report_id, before, size + 1),
                size,
                _ACTIVITIES_PAGE,
                _ID,
            )
        return report_service_pb2.ListReportActivitiesResponse(
            activities=[mapping.activity_to_proto(row) for row in rows], next_page_token=token
        )

    def GetUserReportSettings(self, request, context) -> report_pb2.UserReportSettings:
        report_id = _checked_id("report_id", request.report_id)
        user_id = current_principal().subject
        with read_transaction(database):
            store.visible_report(report_id, user_id)
            row = store.user_settings(report_id, user_id)
        return mapping.user_settings_to_proto(report_id, user_id, row.settings if row else {})

    def UpdateUserReportSettings(self, request, context) -> report_pb2.UserReportSettings:
        report_id = _checked_id("report_id", request.report_id)
        user_id = current_principal().subject
        settings = mapping.struct_to_dict(request.settings)
        with database.atomic():
            store.locked_report(report_id, user_id, original_lock=store.SHARED)
            store.put_user_settings(report_id, user_id, settings, utcnow())
        return mapping.user_settings_to_proto(report_id, user_id, settings)
