"""The draft workflow: write, discard and commit drafts; delete an original with its drafts.

Every function runs inside the caller's transaction, so a driver that raises, or any other
failure, rolls back whatever the function had already written.
"""

from __future__ import annotations

from datetime import datetime

from report_service import expiry, fields, mapping, revisions, store
from report_service.drivers import DriverRegistry
from report_service.fields import Fields
from report_service.ids import draft_id
from report_service.models import ID_MAX_LENGTH, Report
from report_service.v1 import report_pb2
from shared.errors import Aborted, AlreadyExists, FailedPrecondition, NotFound
from shared.etags import check_etag
from shared.failpoints import failpoint

DRAFT_ID_TAKEN = "DRAFT_ID_TAKEN"
DRAFT_ID_TOO_LONG = "DRAFT_ID_TOO_LONG"
DRAFT_CREATED_CONCURRENTLY = "DRAFT_CREATED_CONCURRENTLY"
REPORT_UPDATED = "reportUpdated"


# ---------------------------------------------------------------------------
# Writing a draft (EditReport, PutReportDraft)
# ---------------------------------------------------------------------------


def _new_draft_row(original: Report, principal: str, now: datetime) -> Report:
    """An unsaved copy of original, as principal's draft of it."""
    new_id = draft_id(principal, original.id)
    if len(new_id) > ID_MAX_LENGTH:
        raise FailedPrecondition(
            f"your draft of {original.id!r} would have an id longer than {ID_MAX_LENGTH} "
            "characters",
            reason=DRAFT_ID_TOO_LONG,
        )
    row = Report(**original.__data__)
    row.id, row.owner_id, row.editing = new_id, principal, original.id
    row.created_at = row.updated_at = now
    row.original_etag = original.etag
    return row


def _insert_draft(row: Report, values: Fields) -> None:
    try:
        store.insert_report(row, values)
    except AlreadyExists:
        taken = store.find_draft(row.editing_id, row.owner_id)
        if taken is not None and taken.id == row.id:
            raise Aborted(
                "a concurrent call created this draft at the same time; retry",
                reason=DRAFT_CREATED_CONCURRENTLY,
            ) from None
        raise _draft_id_taken(row) from None


def _draft_id_taken(row: Report) -> FailedPrecondition:
    """DRAFT_ID_TAKEN, saying which of the caller's own reports holds row's id.

    Under the seed's rule one principal's drafts of `team:x` and `org:x` share an id; any
    other holder is a report stored before draft ids were reserved (another principal's
    draft is never named).
    """
    try:
        holder = store.visible_report(row.id, row.owner_id)
    except NotFound:
        holder = None
    if holder is not None and holder.editing_id is not None:
        return FailedPrecondition(
            f"your draft id {row.id!r} is held by your draft of {holder.editing_id!r} (draft "
            "ids keep only the part after the first `:`): commit or discard that draft first",
            reason=DRAFT_ID_TAKEN,
            metadata={"draft_id": row.id, "editing_id": holder.editing_id},
        )
    return FailedPrecondition(
        f"your draft id {row.id!r} is already used by a report created before draft ids "
        "were reserved: that report must be deleted first",
        reason=DRAFT_ID_TAKEN,
        metadata={"draft_id": row.id},
    )


def edit_report(
    drivers: DriverRegistry, original: Report, principal: str, now: datetime
) -> tuple[report_pb2.Report, bool]:
    """principal's draft of original as it is, created first if principal has none (or an
    expired one); and whether it was created."""
    # Locked: a concurrent discard must not remove the draft between its row and its datasets.
    existing = _live_draft(drivers, original, principal)
    if existing is None:
        try:
            return write_draft(drivers, original, principal, None, {}, now), True
        except Aborted as race:
            # A concurrent EditReport of the same principal created it first: that is the
            # draft to return, as if this call had come second.
            existing = store.find_draft(original.id, principal, lock=True)
            if existing is None or race.reason != DRAFT_CREATED_CONCURRENTLY:
                raise
    return store.report_message(existing, original.etag), False


def put_draft(
    drivers: DriverRegistry,
    original: Report,
    principal: str,
    overrides: Fields,
    now: datetime,
    etag: str = "",
) -> tuple[report_pb2.Report, bool]:
    """principal's draft of original replaced by overrides, created first if principal has none;
    and whether it was created. A set etag must be the existing draft's (an expired draft is
    none)."""
    existing = _live_draft(drivers, original, principal)
    check_etag("etag", etag, existing.etag if existing else None, "your draft")
    if existing is None:
        try:
            return write_draft(drivers, original, principal, None, overrides, now), True
        except Aborted as race:
            # A concurrent call of the same principal created the draft first: replace it, as
            # if this call had come second.
            existing = store.find_draft(original.id, principal, lock=True)
            if existing is None or race.reason != DRAFT_CREATED_CONCURRENTLY:
                raise
    return write_draft(drivers, original, principal, existing, overrides, now), False


def _live_draft(drivers: DriverRegistry, original: Report, principal: str) -> Report | None:
    """principal's draft of original, locked; None if there is none. An expired one is
    discarded here (its driver's before_discard_draft runs), in the caller's transaction."""
    existing = store.find_draft(original.id, principal, lock=True)
    if existing is not None and expiry.is_expired(existing):
        discard_draft(drivers, existing)
        return None
    return existing


def write_draft(
    drivers: DriverRegistry,
    original: Report,
    principal: str,
    existing: Report | None,
    overrides: Fields,
    now: datetime,
) -> report_pb2.Report:
    """Create principal's draft of original (existing None), or replace existing.

    The draft becomes original's fields overlaid with overrides, keeping existing's name
    unless overrides has one, and is based on original as it is now (original_etag); the
    driver's before_create_draft may change it before it is saved.
    """
    datasets = store.datasets_of([original.id])[original.id]
    values = {**mapping.fields_from_row(original, datasets), **overrides}
    if existing is not None and "name" not in overrides:
        values["name"] = existing.name
    row = existing if existing is not None else _new_draft_row(original, principal, now)
    row.original_etag = original.etag
    # Only a type with the hook pays for its two messages: building them and reading the
    # driver's answer back was ~15% of an Edit/Put (bench.micro, no driver installed).
    if drivers.has_hook(original.type, "before_create_draft"):
        preview = Report(**row.__data__)  # what the driver sees, before anything is written
        store.set_columns(preview, values, now)
        values = drivers.before_create_draft(
            original.type,
            mapping.report_to_proto(original, datasets),
            mapping.report_to_proto(preview, values["datasets"], original.etag),
        )
    if existing is None:
        store.set_columns(row, values, now)
        _insert_draft(row, values)
    else:
        store.update_report(row, values, now)
    return mapping.report_to_proto(row, values["datasets"], original.etag)


# ---------------------------------------------------------------------------
# Discarding, deleting, committing
# ---------------------------------------------------------------------------


def discard_draft(drivers: DriverRegistry, draft: Report) -> None:
    if drivers.has_hook(draft.type, "before_discard_draft"):
        drivers.before_discard_draft(draft.type, store.report_message(draft))
    store.delete_reports([draft.id])


def delete_original(drivers: DriverRegistry, original: Report) -> None:
    """Delete original; the database deletes its drafts, datasets, activities and settings."""
    if drivers.has_hook(original.type, "before_discard_draft"):
        for drafts in store.drafts_in_pages(original.id):
            datasets = store.datasets_of([draft.id for draft in drafts])
            for draft in drafts:
                drivers.before_discard_draft(
                    original.type,
                    mapping.report_to_proto(draft, datasets[draft.id], original.etag),
                )
    store.delete_reports([original.id])


def commit_draft(
    drivers: DriverRegistry,
    original: Report,
    draft: Report,
    principal: str,
    now: datetime,
    revisions_kept: int,
) -> report_pb2.Report:
    """Publish draft to original (locked by the caller) and delete it; see CommitReportDraft."""
    datasets = store.datasets_of([original.id, draft.id])
    before = mapping.fields_from_row(original, datasets[original.id])
    proposed = mapping.fields_from_row(draft, datasets[draft.id])
    changes = fields.changed(before, proposed, fields.COMMITTED)
    if drivers.has_hook(original.type, "after_commit_draft"):  # as above: messages cost
        changes = drivers.after_commit_draft(
            original.type,
            mapping.report_to_proto(original, datasets[original.id]),
            mapping.report_to_proto(draft, datasets[draft.id], original.etag),
            changes,
        )
    original.defn_updated_at = now
    columns = {name: value for name, value in changes.items() if name != "datasets"}
    store.update_report(original, columns, now)
    failpoint("report.commit.after_update")
    if "datasets" in changes:
        store.replace_datasets(original.id, changes["datasets"])
    failpoint("report.commit.after_datasets")
    store.delete_reports([draft.id])
    failpoint("report.commit.after_draft_delete")
    store.delete_user_settings(original.id)
    store.record_activity(original.id, REPORT_UPDATED, principal, now, changes)
    revisions.record(
        original.id, revisions.Reason.REASON_DRAFT_COMMITTED, principal, now, revisions_kept
    )
    failpoint("report.commit.before_commit")
    return mapping.report_to_proto(original, changes.get("datasets", datasets[original.id]))
