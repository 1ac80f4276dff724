"""Peewee models of report-service: reports and drafts, datasets, activities, user settings."""

from __future__ import annotations

import json

import peewee

from shared import idempotency
from shared.clock import utcnow as utcnow  # the services' one clock (shared.clock)
from shared.events import EventStore

database = peewee.DatabaseProxy()
# WatchReport's events (report_service.watching); tables made by migration 0005.
EVENTS = EventStore(database, "report_service_events")

ID_MAX_LENGTH = 512


class JSONTextField(peewee.TextField):
    """A JSON value stored as text, so that SQLite and PostgreSQL store it the same way."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))

    def python_value(self, value):
        return None if value is None else json.loads(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database


class Report(BaseModel):
    """An original (editing is NULL) or a draft of one (editing is the original)."""

    id = peewee.CharField(max_length=ID_MAX_LENGTH, primary_key=True)
    type = peewee.CharField(max_length=100)
    name = peewee.CharField(max_length=200)
    defn = JSONTextField()
    template_id = peewee.CharField(max_length=ID_MAX_LENGTH, null=True)
    datasource_id = peewee.CharField(max_length=ID_MAX_LENGTH, null=True)
    query_id = peewee.CharField(max_length=ID_MAX_LENGTH, null=True)
    settings = JSONTextField()
    enable_filter = peewee.BooleanField()
    snapshot_enabled = peewee.BooleanField()
    snapshot_schedule = peewee.CharField(max_length=200)
    snapshot_retain_count = peewee.IntegerField()
    owner_id = peewee.TextField()
    # Deleting an original deletes its drafts (and, through them, their datasets).
    editing = peewee.ForeignKeyField(
        "self",
        null=True,
        backref="drafts",
        on_delete="CASCADE",
        column_name="editing_id",
        index=False,
    )
    created_at = peewee.DateTimeField()
    updated_at = peewee.DateTimeField()
    defn_updated_at = peewee.DateTimeField()
    # New on every write of the row (shared.etags); a draft's original_etag is its original's
    # etag when the draft was made or rebased (NULL for originals, and drafts made before 0003).
    etag = peewee.CharField(max_length=64)
    original_etag = peewee.CharField(max_length=64, null=True)

    class Meta:
        table_name = "report"
        indexes = (
            # One draft per principal per original; also the draft lookup.
            (("editing", "owner_id"), True),
            # ListReports: originals (editing_id IS NULL) in id order.
            (("editing", "id"), False),
            # The purge of expired drafts, oldest first (migration 0004: drafts only).
            (("updated_at",), False),
        )


class ReportDataset(BaseModel):
    report = peewee.ForeignKeyField(Report, backref="+", on_delete="CASCADE", index=False)
    dataset_id = peewee.CharField(max_length=ID_MAX_LENGTH)
    alias = peewee.CharField(max_length=200)
    position = peewee.IntegerField()

    class Meta:
        table_name = "report_dataset"
        indexes = ((("report", "position"), True),)


class Activity(BaseModel):
    report = peewee.ForeignKeyField(Report, backref="+", on_delete="CASCADE", index=False)
    type = peewee.CharField(max_length=64)
    actor_id = peewee.TextField()
    created_at = peewee.DateTimeField()
    details = JSONTextField()

    class Meta:
        table_name = "activity"
        # ListReportActivities: one report's activities, newest (highest id) first.
        indexes = ((("report", "id"), False),)


class UserReportSettings(BaseModel):
    report = peewee.ForeignKeyField(Report, backref="+", on_delete="CASCADE", index=False)
    user_id = peewee.TextField()
    settings = JSONTextField()
    updated_at = peewee.DateTimeField()

    class Meta:
        table_name = "user_report_settings"
        indexes = ((("report", "user_id"), True),)


class RequestRecord(idempotency.RequestRecord):
    """The first response to a principal's request_id (shared.idempotency)."""

    class Meta:
        database = database
        table_name = "request_record"


class ReportRevision(BaseModel):
    """An original as one change left it: the report's columns and its datasets, copied."""

    report = peewee.ForeignKeyField(Report, backref="+", on_delete="CASCADE", index=False)
    revision_id = peewee.CharField(max_length=64)
    create_time = peewee.DateTimeField()
    actor_id = peewee.TextField()
    reason = peewee.SmallIntegerField()  # report_pb2.ReportRevision.Reason
    # The report's columns as the change left them (see report_service.revisions).
    type = peewee.CharField(max_length=100)
    name = peewee.CharField(max_length=200)
    defn = JSONTextField()
    template_id = peewee.CharField(max_length=ID_MAX_LENGTH, null=True)
    datasource_id = peewee.CharField(max_length=ID_MAX_LENGTH, null=True)
    query_id = peewee.CharField(max_length=ID_MAX_LENGTH, null=True)
    settings = JSONTextField()
    enable_filter = peewee.BooleanField()
    snapshot_enabled = peewee.BooleanField()
    snapshot_schedule = peewee.CharField(max_length=200)
    snapshot_retain_count = peewee.IntegerField()
    owner_id = peewee.TextField()
    created_at = peewee.DateTimeField()
    updated_at = peewee.DateTimeField()
    defn_updated_at = peewee.DateTimeField()
    etag = peewee.CharField(max_length=64)
    # JSON array of [position, dataset_id, alias], as the datasets were.
    datasets = peewee.TextField()

    class Meta:
        table_name = "report_revision"
        indexes = (
            # ListReportRevisions and pruning: one report's revisions, newest (highest id) first.
            (("report", "id"), False),
            (("report", "revision_id"), True),
            # A draft's base: the revision with the etag the draft was made from.
            (("report", "etag"), False),
        )
