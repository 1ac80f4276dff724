"""Initial schema: reports (originals and drafts), their datasets, activities, user settings.

The models below are frozen copies of report_service.models as of this migration; later
changes to models.py need a new migration, never an edit here.
"""

import peewee


def up(migrator, db):
    class Base(db.Model):
        class Meta:
            legacy_table_names = False

    class Report(Base):
        id = peewee.CharField(max_length=512, primary_key=True)
        type = peewee.CharField(max_length=100)
        name = peewee.CharField(max_length=200)
        defn = peewee.TextField()
        template_id = peewee.CharField(max_length=512, null=True)
        datasource_id = peewee.CharField(max_length=512, null=True)
        query_id = peewee.CharField(max_length=512, null=True)
        settings = peewee.TextField()
        enable_filter = peewee.BooleanField()
        snapshot_enabled = peewee.BooleanField()
        snapshot_schedule = peewee.CharField(max_length=200)
        snapshot_retain_count = peewee.IntegerField()
        owner_id = peewee.TextField()
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

        class Meta:
            table_name = "report"
            indexes = ((("editing", "owner_id"), True), (("editing", "id"), False))

    class ReportDataset(Base):
        report = peewee.ForeignKeyField(Report, backref="+", on_delete="CASCADE", index=False)
        dataset_id = peewee.CharField(max_length=512)
        alias = peewee.CharField(max_length=200)
        position = peewee.IntegerField()

        class Meta:
            table_name = "report_dataset"
            indexes = ((("report", "position"), True),)

    class Activity(Base):
        report = peewee.ForeignKeyField(Report, backref="+", on_delete="CASCADE", index=False)
        type = peewee.CharField(max_length=64)
        actor_id = peewee.TextField()
        created_at = peewee.DateTimeField()
        details = peewee.TextField()

        class Meta:
            table_name = "activity"
            indexes = ((("report", "id"), False),)

    class UserReportSettings(Base):
        report = peewee.ForeignKeyField(Report, backref="+", on_delete="CASCADE", index=False)
        user_id = peewee.TextField()
        settings = peewee.TextField()
        updated_at = peewee.DateTimeField()

        class Meta:
            table_name = "user_report_settings"
            indexes = ((("report", "user_id"), True),)

    db.create_tables([Report, ReportDataset, Activity, UserReportSettings])
