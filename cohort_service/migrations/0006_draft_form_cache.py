"""draft.form_cache and draft.staged_proposals: what a read of a draft needs, on its row.

form_cache: the draft's form as protobuf bytes, as of its revision (cohort_service.form_cache).
Drafts stored before have NULL: they are read from their links, as before, until the next
change of their form writes the bytes. staged_proposals: the number of its pending
proposals, counted here for the drafts stored before.
"""

import peewee


def up(migrator, db):
    migrator.add_column("draft", "form_cache", peewee.BlobField(null=True)).run()
    migrator.add_column("draft", "staged_proposals", peewee.IntegerField(default=0)).run()
    db.execute_sql(
        "UPDATE draft SET staged_proposals = (SELECT COUNT(*) FROM proposal"
        " WHERE proposal.draft_id = draft.id AND proposal.decision = 0)"
    )
