"""Request ids (AIP-155) and the expiry of drafts.

- request_record: the first response to each principal's request_id (shared.idempotency),
  purged after REPORT_IDEMPOTENCY_TTL, oldest first.
- An index of drafts by updated_at: the purge of drafts untouched for REPORT_DRAFT_TTL reads
  the oldest first. Partial (drafts only): originals are never purged.

Numbered 0004, after 0003 of the revisions work; the runner applies each missing script by
name, so either may be applied first.
"""

import peewee


def up(migrator, db):
    class RequestRecord(db.Model):  # a frozen copy of shared.idempotency.RequestRecord
        principal = peewee.TextField()
        key = peewee.CharField(max_length=200)
        fingerprint = peewee.CharField(max_length=64)
        response = peewee.BlobField(null=True)
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "request_record"
            legacy_table_names = False
            indexes = ((("principal", "key"), True), (("created_at",), False))

    db.create_tables([RequestRecord])
    db.execute_sql(
        "CREATE INDEX report_updated_at ON report (updated_at) WHERE editing_id IS NOT NULL"
    )
