"""Drafts stored under the old draft id rule get their id by the new one (report_service.ids).

The old rule, `<principal>:<slug after the first colon>-draft`, gave one id to several
(principal, original) pairs; a draft stored under it could hold the id the new rule gives
another principal's draft, whose EditReport would then fail because of a draft it cannot
see. Each draft whose id differs from the new rule's is moved to that id, with its datasets
and view settings (a draft has no activities; they are moved too, to be sure). A draft whose
new id is held by an original (one created before such ids were reserved) or would be longer
than 512 characters keeps its id; `report-service migrate` logs each. Originals are not
renamed: their ids are what clients know them by. The rule is copied here, frozen, as the
models of 0001 are.
"""

import logging

_LOGGER = logging.getLogger(__name__)
# The columns of report (0001) a moved draft keeps as they are: all but id and owner_id.
_KEPT = (
    "type, name, defn, template_id, datasource_id, query_id, settings, enable_filter, "
    "snapshot_enabled, snapshot_schedule, snapshot_retain_count, editing_id, "
    "created_at, updated_at, defn_updated_at"
)
_CHILDREN = ("report_dataset", "user_report_settings", "activity")


def _draft_id(principal, original_id):
    _, colon, rest = original_id.partition(":")
    slug = rest if colon else original_id
    if ":" not in slug and not slug.startswith("~"):
        return f"{principal}:{slug}-draft"
    escaped = original_id.replace("%", "%25").replace(":", "%3A")
    return f"{principal}:~{escaped}-draft"


def up(migrator, db):
    p = db.param
    drafts = db.execute_sql(
        "SELECT id, owner_id, editing_id FROM report WHERE editing_id IS NOT NULL"
    ).fetchall()
    pending = {
        old: (owner, _draft_id(owner, editing))
        for old, owner, editing in drafts
        if _draft_id(owner, editing) != old
    }
    pending = {old: target for old, target in pending.items() if len(target[1]) <= 512}
    # A draft's new id may be another draft's old one (only under odd original ids); moving
    # the one whose target is free first frees the next.
    while pending:
        taken = {
            row[0]
            for row in db.execute_sql(
                f"SELECT id FROM report WHERE id IN ({', '.join([p] * len(pending))})",
                [new for _, new in pending.values()],
            ).fetchall()
        }
        movable = {old: target for old, target in pending.items() if target[1] not in taken}
        if not movable:
            break
        for old, (owner, new) in movable.items():
            _move(db, old, new, owner)
            del pending[old]
    for old, (_, new) in pending.items():
        _LOGGER.warning("draft %r keeps its id: %r is taken by an original", old, new)


def _move(db, old, new, owner):
    p = db.param
    # The copy has the same (editing_id, owner_id), which is unique: the old row steps aside
    # under an owner no principal has (principals hold no spaces) until it is deleted.
    db.execute_sql(f"UPDATE report SET owner_id = {p} WHERE id = {p}", (owner + " ", old))
    db.execute_sql(
        f"INSERT INTO report (id, owner_id, {_KEPT}) SELECT {p}, {p}, {_KEPT} "
        f"FROM report WHERE id = {p}",
        (new, owner, old),
    )
    for table in _CHILDREN:
        db.execute_sql(f"UPDATE {table} SET report_id = {p} WHERE report_id = {p}", (new, old))
    db.execute_sql(f"DELETE FROM report WHERE id = {p}", (old,))
