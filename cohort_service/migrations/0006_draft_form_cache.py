"""draft.form_cache: the draft's form as protobuf bytes, as of its revision (form_cache.py).

Drafts stored before have NULL: they are read from their links, as before, until the next
change of their form writes the bytes.
"""

import peewee


def up(migrator, db):
    migrator.add_column("draft", "form_cache", peewee.BlobField(null=True)).run()
