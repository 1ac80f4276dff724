"""draft.form_bytes: the serialized size of the draft's form when it was last written.

ListCohortDrafts cuts its page to the byte budget (shared.budget) from it, before loading any
form. Drafts written before this migration have NULL: counted as a whole resource (1 MiB).
"""

import peewee


def up(migrator, db):
    migrator.add_column("draft", "form_bytes", peewee.IntegerField(null=True)).run()
