"""The report store's writes, compiled once (shared.compiled) and then run with each call's values.

Building peewee's SQL was ~45 % of Edit→Put→Commit's servicer CPU (bench.micro --profile;
the revision's INSERT ... SELECT of 20 columns alone ~25 %), against ~10-30 µs for SQLite to
run a statement. Each function here is one statement, with the SQL peewee builds for it; the
values reach the driver as the model's fields would hand them (`Field.db_value`), so what is
stored is unchanged.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import peewee

from report_service.models import (
    Activity,
    Report,
    ReportDataset,
    ReportRevision,
    UserReportSettings,
    database,
)
from shared.compiled import CompiledQuery, unconverted

# Every column of a report row, in the order of _INSERT_REPORT's arguments.
_REPORT_FIELDS = tuple(Report._meta.sorted_fields)
_MAX_UPDATE_SHAPES = 64  # sets of columns an UPDATE writes; a few in practice


def _db_values(fields: Sequence[peewee.Field], values: Sequence[Any]) -> list[Any]:
    return [field.db_value(value) for field, value in zip(fields, values, strict=True)]


# ---------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------

# ON CONFLICT DO NOTHING (either engine, any unique index: the id, or one draft per principal
# and original) tells a taken id by its row count, without the savepoint (two statements) a
# failing INSERT needs to leave the transaction usable. A concurrent insert of the same key
# is still waited for: PostgreSQL's DO NOTHING waits for the other transaction and does
# nothing once it commits; SQLite writers queue on the database's write lock.
_INSERT_REPORT = CompiledQuery(
    database,
    lambda *values: (
        Report.insert(
            {field: unconverted(value) for field, value in zip(_REPORT_FIELDS, values, strict=True)}
        )
        .on_conflict(action="NOTHING")
        .returning()  # no RETURNING: peewee would ask for the id back on PostgreSQL
    ),
)


def insert_report(row: Report) -> bool:
    """Insert row with every column as set; False (nothing written) when a unique key is taken."""
    values = _db_values(_REPORT_FIELDS, [row.__data__.get(f.name) for f in _REPORT_FIELDS])
    return _INSERT_REPORT.raw(*values).rowcount == 1


_UPDATES: OrderedDict[tuple[str, ...], CompiledQuery] = OrderedDict()
_UPDATES_LOCK = threading.Lock()


def _update_of(columns: tuple[str, ...]) -> CompiledQuery:
    with _UPDATES_LOCK:
        query = _UPDATES.get(columns)
        if query is not None:
            _UPDATES.move_to_end(columns)
            return query
    fields = [Report._meta.columns[column] for column in columns]
    query = CompiledQuery(
        database,
        lambda *values: Report.update(
            {field: unconverted(value) for field, value in zip(fields, values[:-1], strict=True)}
        ).where(Report.id == values[-1]),
    )
    with _UPDATES_LOCK:
        _UPDATES[columns] = query
        while len(_UPDATES) > _MAX_UPDATE_SHAPES:
            _UPDATES.popitem(last=False)
    return query


def update_report(report_id: str, columns: Mapping[str, Any]) -> None:
    """UPDATE report SET columns (column name -> value) WHERE id = report_id."""
    names = tuple(columns)
    fields = [Report._meta.columns[name] for name in names]
    _update_of(names).raw(*_db_values(fields, list(columns.values())), report_id)


_DELETE_REPORT = CompiledQuery(database, lambda i: Report.delete().where(Report.id == i))


def delete_report(report_id: str) -> None:
    _DELETE_REPORT.raw(report_id)


# ---------------------------------------------------------------------------
# Datasets, view settings, activities
# ---------------------------------------------------------------------------

_DELETE_DATASETS = CompiledQuery(
    database, lambda i: ReportDataset.delete().where(ReportDataset.report == i)
)
_DATASET_FIELDS = (
    ReportDataset.report,
    ReportDataset.dataset_id,
    ReportDataset.alias,
    ReportDataset.position,
)
# One shape per number of datasets (CompiledQuery keeps the most used).
_INSERT_DATASETS = CompiledQuery(
    database,
    lambda reports, dataset_ids, aliases, positions: ReportDataset.insert_many(
        [
            tuple(unconverted(value) for value in row)
            for row in zip(reports, dataset_ids, aliases, positions, strict=True)
        ],
        fields=_DATASET_FIELDS,
    ).returning(),  # no RETURNING of the ids on PostgreSQL: nothing reads them
)


def replace_datasets(report_id: str, datasets: Sequence[Mapping[str, str]]) -> None:
    _DELETE_DATASETS.raw(report_id)
    insert_datasets(report_id, datasets)


def insert_datasets(report_id: str, datasets: Sequence[Mapping[str, str]]) -> None:
    if datasets:
        _INSERT_DATASETS.raw(
            [report_id] * len(datasets),
            [dataset["dataset_id"] for dataset in datasets],
            [dataset.get("alias", "") for dataset in datasets],
            list(range(len(datasets))),
        )


_DELETE_USER_SETTINGS = CompiledQuery(
    database, lambda i: UserReportSettings.delete().where(UserReportSettings.report == i)
)


def delete_user_settings(report_id: str) -> None:
    _DELETE_USER_SETTINGS.raw(report_id)


_ACTIVITY_FIELDS = (
    Activity.report,
    Activity.type,
    Activity.actor_id,
    Activity.created_at,
    Activity.details,
)
_INSERT_ACTIVITY = CompiledQuery(
    database,
    lambda *values: Activity.insert(
        {field: unconverted(value) for field, value in zip(_ACTIVITY_FIELDS, values, strict=True)}
    ),
)


def insert_activity(
    report_id: str, activity_type: str, actor_id: str, now: datetime, details: Mapping[str, Any]
) -> Any:
    """Insert the activity; its id."""
    values = (report_id, activity_type, actor_id, now, details)
    cursor = _INSERT_ACTIVITY.raw(*_db_values(_ACTIVITY_FIELDS, values))
    if database.returning_clause:  # PostgreSQL: peewee's INSERT returns the id
        return cursor.fetchone()[0]
    return cursor.lastrowid


# ---------------------------------------------------------------------------
# Revisions
# ---------------------------------------------------------------------------

# The report columns a revision copies, under the same names.
REVISION_COPIED = (
    "type",
    "name",
    "defn",
    "template_id",
    "datasource_id",
    "query_id",
    "settings",
    "enable_filter",
    "snapshot_enabled",
    "snapshot_schedule",
    "snapshot_retain_count",
    "owner_id",
    "created_at",
    "updated_at",
    "defn_updated_at",
    "etag",
)


def _record_revision(report_id, revision_id, now, actor_id, reason):
    from report_service.store import datasets_column  # store imports this module

    source = Report.select(
        Report.id,
        peewee.Value(revision_id, converter=False),
        peewee.Value(now, converter=False),
        peewee.Value(actor_id, converter=False),
        peewee.Value(reason, converter=False),
        *(Report._meta.columns[name] for name in REVISION_COPIED),
        # json_agg of no rows is NULL (PostgreSQL); json_group_array's is '[]' (SQLite)
        peewee.fn.COALESCE(peewee.Cast(datasets_column(Report.id), "text"), "[]"),
    ).where(Report.id == report_id)
    columns = [
        ReportRevision.report,
        ReportRevision.revision_id,
        ReportRevision.create_time,
        ReportRevision.actor_id,
        ReportRevision.reason,
        *(ReportRevision._meta.columns[name] for name in REVISION_COPIED),
        ReportRevision.datasets,
    ]
    return ReportRevision.insert_from(source, columns).returning()


_RECORD_REVISION = CompiledQuery(database, _record_revision)


def _prune_revisions(report_id, same_report_id, kept):
    newest_pruned = (
        ReportRevision.select(ReportRevision.id)
        .where(ReportRevision.report == same_report_id)
        .order_by(ReportRevision.id.desc())
        .limit(1)
        .offset(kept)
    )
    return ReportRevision.delete().where(
        (ReportRevision.report == report_id) & (ReportRevision.id <= newest_pruned)
    )


_PRUNE_REVISIONS = CompiledQuery(database, _prune_revisions)


def record_revision(
    report_id: str, revision_id: str, now: datetime, actor_id: str, reason: int
) -> None:
    """Copy the report's row and datasets, as the transaction has written them, to a revision."""
    _RECORD_REVISION.raw(report_id, revision_id, now, actor_id, reason)


def prune_revisions(report_id: str, kept: int) -> None:
    """Delete report_id's revisions but the newest kept."""
    _PRUNE_REVISIONS.raw(report_id, report_id, kept)
