"""draft.etag: a new value on every change of a draft (DraftFormState.etag, AIP-154).

Existing drafts get a random etag each, drawn by the database for every row.
"""

import peewee


def up(migrator, db):
    migrator.add_column("draft", "etag", peewee.CharField(max_length=64, default="")).run()
    if isinstance(db, peewee.PostgresqlDatabase):
        random_hex = "substr(md5(random()::text || clock_timestamp()::text), 1, 16)"
    else:
        random_hex = "lower(hex(randomblob(8)))"
    db.execute_sql(f"UPDATE draft SET etag = 'W/' || {random_hex}")
