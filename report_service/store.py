"""Report queries: loading with the access rules, and writing, each a fixed number of statements.

Callers hold the transaction (`with database.atomic():`); nothing here opens one except the
savepoint that turns a lost insert race into a domain error.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

import peewee
from peewee import fn

from report_service import expiry, mapping
from report_service.fields import Fields
from report_service.models import Activity, Report, ReportDataset, UserReportSettings, database
from report_service.v1 import report_pb2
from shared.budget import STRUCT_BYTES_PER_JSON_CHAR, UTF8_BYTES_PER_CHAR, items_within
from shared.compiled import CompiledQuery
from shared.errors import AlreadyExists, FailedPrecondition, NotFound
from shared.etags import new_etag

REPORT_NOT_FOUND = "REPORT_NOT_FOUND"
DRAFT_NOT_FOUND = "DRAFT_NOT_FOUND"
REPORT_IS_DRAFT = "REPORT_IS_DRAFT"
REPORT_ALREADY_EXISTS = "REPORT_ALREADY_EXISTS"

Datasets = list[dict[str, str]]

# ---------------------------------------------------------------------------
# Loading, with the access rules
# ---------------------------------------------------------------------------


# Row locks (PostgreSQL; SQLite's write lock is whole-database, so it needs none). A write
# locks what it reads before it writes, always the original first and then a draft, so that
# two writes never wait on each other in a cycle:
# - EXCLUSIVE on the original by writes that change or delete it (UpdateReport of an
#   original, DeleteReport of an original, CommitReportDraft): they wait for, and hold off,
#   every other write of the original and of its drafts;
# - SHARED on the original by writes of a draft or of view settings: the original cannot
#   change or go while they copy or refer to it, yet two principals' drafts of one original
#   are written side by side; then EXCLUSIVE on the draft itself.
# A row deleted while a write waited on it is not found when the lock is granted: NOT_FOUND.
SHARED = "FOR SHARE"
EXCLUSIVE = "FOR UPDATE"

# Compiled once (shared.compiled): GetReport spent half its servicer CPU building these.
_REPORT_BY_ID = {
    lock: CompiledQuery(
        database,
        lambda i, lock=lock: Report.select().where(Report.id == i).for_update(lock or False),
    )
    for lock in (None, SHARED, EXCLUSIVE)
}
_DRAFT_OF = {
    lock: CompiledQuery(
        database,
        lambda original, owner, lock=lock: (
            Report.select()
            .where((Report.editing == original) & (Report.owner_id == owner))
            .for_update(lock or False)
        ),
    )
    for lock in (None, EXCLUSIVE)
}
_DATASETS_OF = CompiledQuery(
    database,
    lambda ids: (
        ReportDataset.select(ReportDataset.report, ReportDataset.dataset_id, ReportDataset.alias)
        .where(ReportDataset.report.in_(ids))
        .order_by(ReportDataset.report, ReportDataset.position)
        .tuples()
    ),
)


# StoredReport's fields are named after the columns.
STORED_REPORT_COLUMNS = tuple(Report._meta.columns[name] for name in mapping.StoredReport._fields)


def datasets_column(report_id):
    """The report's datasets as one JSON array of [position, dataset_id, alias] (or NULL)."""
    triple = (ReportDataset.position, ReportDataset.dataset_id, ReportDataset.alias)
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        aggregate = fn.json_agg(fn.json_build_array(*triple))
    else:
        aggregate = fn.json_group_array(fn.json_array(*triple))
    return ReportDataset.select(aggregate).where(ReportDataset.report == report_id)


_ORIGINAL = Report.alias("original")


def _original_etag_column():
    """The etag of the report's original (NULL for an original): whether a draft is outdated."""
    return _ORIGINAL.select(_ORIGINAL.etag).where(_ORIGINAL.id == Report.editing)


# GetReport in one statement, so that it needs no transaction: a lone SELECT is one snapshot
# (BEGIN and COMMIT were ~12 % of it). The datasets come aggregated in one column: a join
# would repeat defn and settings once per dataset (1,000 datasets of a 1 MB defn: ~1 GB).
_REPORT_WITH_DATASETS = CompiledQuery(
    database,
    lambda i: Report.select(
        *STORED_REPORT_COLUMNS, _original_etag_column(), datasets_column(Report.id)
    ).where(Report.id == i),
)


def _lock(lock: str | None) -> str | None:
    # SQLite has no FOR UPDATE; its write lock is whole-database
    return lock if database.for_update else None


def _select_report(report_id: str, *, lock: str | None = None) -> Report | None:
    return _REPORT_BY_ID[_lock(lock)].first(report_id)


def _checked_visible(row, report_id: str, principal: str):
    """row if principal may see it (an original, or principal's own draft); else NOT_FOUND.

    Another principal's draft is NOT_FOUND too: its existence is not revealed; principal's own
    expired draft is NOT_FOUND with reason DRAFT_EXPIRED (report_service.expiry).
    """
    if row is None or (row.editing_id is not None and row.owner_id != principal):
        raise not_found(report_id)
    expiry.check_live(row)
    return row


def not_found(report_id: str) -> NotFound:
    return NotFound(f"there is no report {report_id!r}", reason=REPORT_NOT_FOUND)


def visible_report(report_id: str, principal: str) -> Report:
    """An original, or one of principal's drafts; NOT_FOUND for anything else.

    Another principal's draft is NOT_FOUND too: its existence is not revealed.
    """
    return _checked_visible(_select_report(report_id), report_id, principal)


def locked_report(report_id: str, principal: str, *, original_lock: str) -> Report:
    """visible_report, locked for a write: an original with original_lock, or a draft
    EXCLUSIVE after its original SHARED (see the lock order above)."""
    row = visible_report(report_id, principal)
    lock = original_lock
    if row.editing_id is not None:
        if _select_report(row.editing_id, lock=SHARED) is None:  # deleted with its drafts
            raise not_found(report_id)
        lock = EXCLUSIVE
    return _checked_visible(_select_report(report_id, lock=lock), report_id, principal)


def visible_report_message(report_id: str, principal: str) -> report_pb2.Report:
    """visible_report(report_id, principal) as a message, with its datasets; one statement."""
    row = _REPORT_WITH_DATASETS.raw(report_id).fetchone()
    stored = mapping.StoredReport._make(row[:-2]) if row else None
    stored = _checked_visible(stored, report_id, principal)
    return mapping.report_to_proto(stored, parse_datasets(row[-1]), row[-2])


def parse_datasets(triples) -> Datasets:
    """Datasets from a JSON array of [position, dataset_id, alias] (datasets_column), in order.

    psycopg2 parses json; SQLite returns the text.
    """
    if isinstance(triples, str):
        triples = json.loads(triples)
    return [{"dataset_id": d, "alias": a} for _, d, a in sorted(triples or [], key=itemgetter(0))]


def original_report(report_id: str, principal: str, *, lock: str | None = None) -> Report:
    """The original report_id, locked (SHARED or EXCLUSIVE) for the transaction when asked.

    NOT_FOUND unless it is visible to principal; FAILED_PRECONDITION for principal's own draft,
    since the draft RPCs take the id of the original.
    """
    row = _checked_visible(_select_report(report_id, lock=lock), report_id, principal)
    if row.editing_id is not None:
        raise FailedPrecondition(
            f"{report_id!r} is a draft; the draft RPCs take the id of the original report "
            f"({row.editing_id!r})",
            reason=REPORT_IS_DRAFT,
            metadata={"editing_id": row.editing_id},
        )
    return row


def find_draft(original_id: str, principal: str, *, lock: bool = False) -> Report | None:
    """principal's draft of original_id, if any; EXCLUSIVE-locked when asked (after the
    original, see the lock order above)."""
    return _DRAFT_OF[_lock(EXCLUSIVE if lock else None)].first(original_id, principal)


def own_draft(original_id: str, principal: str, *, lock: bool = False) -> Report:
    """principal's draft of original_id, or NOT_FOUND (DRAFT_EXPIRED if it expired)."""
    draft = find_draft(original_id, principal, lock=lock)
    if draft is not None:
        expiry.check_live(draft)
    else:
        raise NotFound(
            f"you have no draft of report {original_id!r}",
            reason=DRAFT_NOT_FOUND,
            metadata={"report_id": original_id},
        )
    return draft


def drafts_in_pages(original_id: str) -> Iterator[list[Report]]:
    """original_id's drafts in id order, a page of at most the list byte budget at a time.

    Every principal may have a draft of an original, each up to the resource budget: read
    all at once, they could weigh any multiple of it. The caller must hold the original
    EXCLUSIVE, so that no draft is added meanwhile.
    """
    estimates = list(
        Report.select(Report.id, _report_bytes())
        .where(Report.editing == original_id)
        .order_by(Report.id)
        .tuples()
    )
    while estimates:
        count = items_within(estimate for _, estimate in estimates)
        yield reports_by_id([report_id for report_id, _ in estimates[:count]])
        del estimates[:count]


# Estimates of a message's size from the lengths of its texts in the database, as upper bounds
# (an estimate must not come out low): texts as UTF-8, JSON as a Struct (shared.budget), and
# a fixed allowance for tags, times and numbers. The id is counted twice: it is in the links.
FIXED_BYTES = 512


def json_bytes(column):
    return fn.COALESCE(fn.LENGTH(column), 0) * STRUCT_BYTES_PER_JSON_CHAR


def text_bytes(*columns):
    lengths = [fn.COALESCE(fn.LENGTH(column), 0) for column in columns]
    return functools.reduce(operator.add, lengths) * UTF8_BYTES_PER_CHAR


def _report_bytes():
    """A report's size as a message, as an upper bound from lengths (a column expression)."""
    dataset_bytes = ReportDataset.select(
        fn.COALESCE(
            fn.SUM(fn.LENGTH(ReportDataset.dataset_id) + fn.LENGTH(ReportDataset.alias) + 8), 0
        )
        * UTF8_BYTES_PER_CHAR
    ).where(ReportDataset.report == Report.id)
    texts = (Report.id, Report.id, Report.type, Report.name, Report.owner_id, Report.editing)
    ids = (Report.template_id, Report.datasource_id, Report.query_id, Report.snapshot_schedule)
    objects = json_bytes(Report.defn) + json_bytes(Report.settings)
    return (
        objects
        + text_bytes(*texts, *ids, Report.etag, Report.original_etag)
        + dataset_bytes
        + FIXED_BYTES
    )


def originals_page(after_id: str | None, limit: int) -> list[tuple[str, int]]:
    """(id, estimated bytes as a message) of the originals after after_id, in id order.

    Estimated from lengths in the database, so that a page of large reports is cut to its
    byte budget before their texts are read.
    """
    query = Report.select(Report.id, _report_bytes()).where(Report.editing.is_null())
    if after_id is not None:
        query = query.where(Report.id > after_id)
    return list(query.order_by(Report.id).limit(limit).tuples())


def reports_by_id(report_ids: Sequence[str]) -> list[Report]:
    """The reports, in the order of report_ids."""
    rows = {row.id: row for row in Report.select().where(Report.id.in_(list(report_ids)))}
    return [rows[report_id] for report_id in report_ids]


def datasets_of(report_ids: Collection[str]) -> dict[str, Datasets]:
    """The datasets of each report, in order, in one query."""
    result: dict[str, Datasets] = {report_id: [] for report_id in report_ids}
    if not result:
        return result
    for report_id, dataset_id, alias in _DATASETS_OF(list(result)):
        result[report_id].append({"dataset_id": dataset_id, "alias": alias})
    return result


def report_message(row: Report, original_etag: str | None = None) -> report_pb2.Report:
    """row as a message, with its datasets (one query); for a draft, original_etag is its
    original's etag (read when not given: one more query)."""
    if row.editing_id is not None and original_etag is None:
        original_etag = Report.select(Report.etag).where(Report.id == row.editing_id).scalar()
    return mapping.report_to_proto(row, datasets_of([row.id])[row.id], original_etag)


def user_settings(report_id: str, user_id: str) -> UserReportSettings | None:
    return (
        UserReportSettings.select()
        .where((UserReportSettings.report == report_id) & (UserReportSettings.user_id == user_id))
        .first()
    )


def activities_page(report_id: str, before_id: int | None, limit: int) -> list[tuple[int, int]]:
    """(id, estimated bytes as a message) of report_id's activities before before_id, newest
    first."""
    texts = text_bytes(Activity.report, Activity.type, Activity.actor_id)
    estimate = json_bytes(Activity.details) + texts + FIXED_BYTES
    query = Activity.select(Activity.id, estimate).where(Activity.report == report_id)
    if before_id is not None:
        query = query.where(Activity.id < before_id)
    return list(query.order_by(Activity.id.desc()).limit(limit).tuples())


def activities_by_id(activity_ids: Sequence[int]) -> list[Activity]:
    """The activities, in the order of activity_ids."""
    rows = {row.id: row for row in Activity.select().where(Activity.id.in_(list(activity_ids)))}
    return [rows[activity_id] for activity_id in activity_ids]


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def replace_datasets(report_id: str, datasets: Sequence[Mapping[str, str]]) -> None:
    ReportDataset.delete().where(ReportDataset.report == report_id).execute()
    if datasets:
        ReportDataset.insert_many(
            [
                {
                    "report": report_id,
                    "dataset_id": dataset["dataset_id"],
                    "alias": dataset.get("alias", ""),
                    "position": position,
                }
                for position, dataset in enumerate(datasets)
            ]
        ).execute()


def insert_report(row: Report, values: Fields) -> None:
    """Insert row (its columns already set from values) and its datasets.

    ALREADY_EXISTS when the id is taken, also by a concurrent insert.
    """
    try:
        with database.atomic():  # a savepoint: a lost race must leave the transaction usable
            row.save(force_insert=True)
    except peewee.IntegrityError:
        raise AlreadyExists(
            f"the report id {row.id!r} is already taken",
            reason=REPORT_ALREADY_EXISTS,
            metadata={"id": row.id},
        ) from None
    replace_datasets(row.id, values.get("datasets", ()))


def set_columns(row: Report, values: Fields, now: datetime) -> None:
    """Set row's columns from values in memory, and a new etag; defn_updated_at moves only
    when defn changes."""
    if "defn" in values and values["defn"] != row.defn:
        row.defn_updated_at = now
    for column, value in mapping.column_values(values).items():
        setattr(row, column, value)
    row.updated_at = now
    row.etag = new_etag()


# What every write of a row writes besides its values; original_etag moves with a draft's base.
_ALWAYS_WRITTEN = ("updated_at", "defn_updated_at", "etag", "original_etag")


def update_report(row: Report, values: Fields, now: datetime) -> None:
    """Write values (and updated_at, defn_updated_at, a new etag) to the stored row; datasets
    if given."""
    set_columns(row, values, now)
    columns = {
        column: getattr(row, column)
        for column in (*mapping.column_values(values), *_ALWAYS_WRITTEN)
    }
    Report.update(columns).where(Report.id == row.id).execute()
    if "datasets" in values:
        replace_datasets(row.id, values["datasets"])


def delete_reports(report_ids: Collection[str]) -> None:
    """Delete the reports; the database cascades to drafts, datasets, activities and settings."""
    if report_ids:
        Report.delete().where(Report.id.in_(list(report_ids))).execute()


def delete_user_settings(report_id: str) -> None:
    UserReportSettings.delete().where(UserReportSettings.report == report_id).execute()


def put_user_settings(report_id: str, user_id: str, settings: dict, now: datetime) -> None:
    (
        UserReportSettings.insert(
            report=report_id, user_id=user_id, settings=settings, updated_at=now
        )
        .on_conflict(
            conflict_target=[UserReportSettings.report, UserReportSettings.user_id],
            update={UserReportSettings.settings: settings, UserReportSettings.updated_at: now},
        )
        .execute()
    )


def record_activity(
    report_id: str, activity_type: str, actor_id: str, now: datetime, details: Mapping[str, Any]
) -> Activity:
    return Activity.create(
        report=report_id, type=activity_type, actor_id=actor_id, created_at=now, details=details
    )
