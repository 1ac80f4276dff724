"""Etags and revisions: report.etag and report.original_etag, the report_revision table, and a
first revision of every existing original.

Existing reports get a random etag each. Existing drafts keep a NULL original_etag: when they
were made, and from which state of their original, is not known, so they read as outdated and
a rebase treats every field they differ on as a conflict. Each original gets one revision
(reason FIRST_RECORDED, no actor) holding it as it is, so that it can be rolled back to and a
draft made from it has a base. The models are frozen copies, as in 0001; the SQL is the one
report_service.revisions runs, frozen too.
"""

import peewee

FIRST_RECORDED = 5  # report_pb2.ReportRevision.REASON_FIRST_RECORDED
# The report columns a revision copies (0001's, and etag).
_COPIED = (
    "type, name, defn, template_id, datasource_id, query_id, settings, enable_filter, "
    "snapshot_enabled, snapshot_schedule, snapshot_retain_count, owner_id, created_at, "
    "updated_at, defn_updated_at, etag"
)


def _random_hex(db) -> str:
    """An SQL expression of 16 random hex digits, drawn anew for each row."""
    if isinstance(db, peewee.PostgresqlDatabase):
        return "substr(md5(random()::text || clock_timestamp()::text), 1, 16)"
    return "lower(hex(randomblob(8)))"


def _datasets_json(db) -> str:
    """The datasets of the report row `r` as a JSON array of [position, dataset_id, alias]."""
    triple = "d.position, d.dataset_id, d.alias"
    if isinstance(db, peewee.PostgresqlDatabase):
        aggregate = f"json_agg(json_build_array({triple}))::text"
    else:
        aggregate = f"json_group_array(json_array({triple}))"
    return f"COALESCE((SELECT {aggregate} FROM report_dataset d WHERE d.report_id = r.id), '[]')"


def up(migrator, db):
    class Base(db.Model):
        class Meta:
            legacy_table_names = False

    class Report(Base):
        id = peewee.CharField(max_length=512, primary_key=True)

        class Meta:
            table_name = "report"

    class ReportRevision(Base):
        report = peewee.ForeignKeyField(Report, backref="+", on_delete="CASCADE", index=False)
        revision_id = peewee.CharField(max_length=64)
        create_time = peewee.DateTimeField()
        actor_id = peewee.TextField()
        reason = peewee.SmallIntegerField()
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
        created_at = peewee.DateTimeField()
        updated_at = peewee.DateTimeField()
        defn_updated_at = peewee.DateTimeField()
        etag = peewee.CharField(max_length=64)
        datasets = peewee.TextField()

        class Meta:
            table_name = "report_revision"
            indexes = (
                (("report", "id"), False),
                (("report", "revision_id"), True),
                (("report", "etag"), False),
            )

    migrator.add_column("report", "etag", peewee.CharField(max_length=64, default="")).run()
    migrator.add_column("report", "original_etag", peewee.CharField(max_length=64, null=True)).run()
    db.execute_sql(f"UPDATE report SET etag = 'W/' || {_random_hex(db)}")
    db.create_tables([ReportRevision])
    p = db.param
    db.execute_sql(
        "INSERT INTO report_revision (report_id, revision_id, create_time, actor_id, reason, "
        f"{_COPIED}, datasets) "
        f"SELECT r.id, {_random_hex(db)}, r.updated_at, '', {p}, {_COPIED}, {_datasets_json(db)} "
        "FROM report r WHERE r.editing_id IS NULL",
        (FIRST_RECORDED,),
    )
