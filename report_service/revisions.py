"""Revisions of originals (AIP-162): recorded and pruned inside each change's transaction, read
back page by page, and the base a draft was made from.

A revision copies the report's row and its datasets with one INSERT ... SELECT, so that what
is recorded is what the transaction wrote, whatever path wrote it.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from report_service import fields, mapping, statements, store
from report_service.fields import Fields
from report_service.models import Report, ReportRevision
from report_service.v1 import report_pb2
from shared.config import Option
from shared.errors import InvalidArgument, NotFound
from shared.failpoints import failpoint

REVISION_NOT_FOUND = "REVISION_NOT_FOUND"
REPORT_ROLLED_BACK = "reportRolledBack"
REVISION_ID_MAX_LENGTH = 64
Reason = report_pb2.ReportRevision.Reason

REVISIONS_KEPT = Option(
    name="revisions_kept",
    help="revisions kept per report; older ones are pruned as new ones are recorded",
    default=100,
    minimum=1,  # the newest revision is the base of drafts made now
    maximum=1_000_000,
)


def record(report_id: str, reason: int, actor_id: str, now: datetime, kept: int) -> None:
    """Record the original report_id as the caller's transaction has written it, then prune
    its revisions to the newest kept. Two statements."""
    statements.record_revision(report_id, secrets.token_hex(8), now, actor_id, reason)
    statements.prune_revisions(report_id, kept)


def check_revision_id(field: str, value: str) -> str:
    if not 1 <= len(value) <= REVISION_ID_MAX_LENGTH or "\x00" in value:
        raise InvalidArgument(
            f"{field} must be a revision id",
            [(field, f"must be 1-{REVISION_ID_MAX_LENGTH} characters, the revision_id of one")],
        )
    return value


def find(report_id: str, revision_id: str) -> ReportRevision:
    """report_id's kept revision revision_id, or NOT_FOUND."""
    row = (
        ReportRevision.select()
        .where((ReportRevision.report == report_id) & (ReportRevision.revision_id == revision_id))
        .first()
    )
    if row is None:
        raise NotFound(
            f"report {report_id!r} has no revision {revision_id!r} (or no longer keeps it)",
            reason=REVISION_NOT_FOUND,
            metadata={"report_id": report_id, "revision_id": revision_id},
        )
    return row


def base_of(draft: Report) -> ReportRevision | None:
    """The revision the draft was made or last rebased from, if it is still kept."""
    if not draft.original_etag:
        return None
    return (
        ReportRevision.select()
        .where(
            (ReportRevision.report == draft.editing_id)
            & (ReportRevision.etag == draft.original_etag)
        )
        .first()
    )


def values(row: ReportRevision) -> Fields:
    """The revision's editable fields, as report_service.fields holds them."""
    return mapping.fields_from_row(row, store.parse_datasets(row.datasets))


def page(report_id: str, before_id: int | None, limit: int) -> list[tuple[int, int]]:
    """(id, estimated bytes as a message) of report_id's revisions before before_id, newest
    first (see store.originals_page for the estimate)."""
    texts = store.text_bytes(
        *(getattr(ReportRevision, name) for name in ("report", "report", "revision_id")),
        *(getattr(ReportRevision, name) for name in ("actor_id", "type", "name", "owner_id")),
        *(getattr(ReportRevision, name) for name in ("template_id", "datasource_id", "query_id")),
        ReportRevision.snapshot_schedule,
        ReportRevision.etag,
        ReportRevision.datasets,
    )
    objects = store.json_bytes(ReportRevision.defn) + store.json_bytes(ReportRevision.settings)
    query = ReportRevision.select(ReportRevision.id, objects + texts + store.FIXED_BYTES).where(
        ReportRevision.report == report_id
    )
    if before_id is not None:
        query = query.where(ReportRevision.id < before_id)
    return list(query.order_by(ReportRevision.id.desc()).limit(limit).tuples())


def by_id(ids: list[Any]) -> list[ReportRevision]:
    """The revisions, in the order of ids."""
    rows = {row.id: row for row in ReportRevision.select().where(ReportRevision.id.in_(ids))}
    return [rows[revision] for revision in ids]


def message(row: ReportRevision) -> report_pb2.ReportRevision:
    return mapping.revision_to_proto(row, store.parse_datasets(row.datasets))


def rollback(
    original: Report, revision: ReportRevision, principal: str, now: datetime, kept: int
) -> report_pb2.Report:
    """Give original (locked by the caller) the committed fields and datasets of revision; see
    RollbackReport."""
    datasets = store.datasets_of([original.id])[original.id]
    before = mapping.fields_from_row(original, datasets)
    changes = fields.changed(before, values(revision), fields.COMMITTED)
    store.update_report(original, changes, now)
    failpoint("report.rollback.after_update")
    store.delete_user_settings(original.id)
    details = {"revision_id": revision.revision_id, "changes": changes}
    store.record_activity(original.id, REPORT_ROLLED_BACK, principal, now, details)
    record(original.id, Reason.REASON_ROLLED_BACK, principal, now, kept)
    return mapping.report_to_proto(original, changes.get("datasets", datasets))
