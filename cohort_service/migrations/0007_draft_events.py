"""The event store of WatchCohortDrafts (shared.events): `event` and `event_topic`."""

from shared.events import create_tables


def up(migrator, db):
    create_tables(db)
