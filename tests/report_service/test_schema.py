"""The initial migration creates exactly the tables, columns and indexes the models describe."""

from __future__ import annotations

from report_service import models
from report_service.server import SERVICE
from shared.db import apply_migrations, open_database
from shared.server import close_store
from tests.support import snapshot, without_events

MODELS = (
    models.Report,
    models.ReportDataset,
    models.Activity,
    models.UserReportSettings,
    models.RequestRecord,
    models.ReportRevision,
)


def test_the_migrations_create_the_schema_of_the_models(database_url):
    database = open_database(database_url)
    try:
        assert apply_migrations(database, SERVICE.migrations) == [
            "0001_initial",
            "0002_distinct_draft_ids",
            "0003_etags_and_revisions",
            "0004_request_ids_and_draft_expiry",
            "0005_events",
        ]
        assert apply_migrations(database, SERVICE.migrations) == []  # idempotent
        for model in MODELS:
            table = model._meta.table_name
            columns = {column.name for column in database.get_columns(table)}
            assert columns == {field.column_name for field in model._meta.sorted_fields}, table
            indexes = {
                (tuple(index.columns), index.unique)
                for index in database.get_indexes(table)
                if tuple(index.columns) != ("id",)
            }
            declared = {
                (tuple(model._meta.fields[name].column_name for name in names), unique)
                for names, unique in model._meta.indexes
            }
            assert indexes == declared, table
        assert set(without_events(snapshot(database))) == {m._meta.table_name for m in MODELS} | {
            "schema_migration"
        }
        event_columns = {column.name for column in database.get_columns("event")}
        assert event_columns == {
            "id",
            "topic",
            "seq",
            "type",
            "resource_id",
            "actor_id",
            "owner_id",
            "create_time",
            "state",
        }
        assert {(tuple(i.columns), i.unique) for i in database.get_indexes("event")} >= {
            (("topic", "seq"), True),
            (("create_time",), False),
        }
    finally:
        close_store(database)
