"""The built-in BOOLEAN flag `cohort_active` that PatchCohortDraftRequest.active selects.

Its ids are derived from fixed names, so that they are the same in every deployment.
"""

import datetime
import uuid

import peewee

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "cohort-service/flags")
FLAG_ID = uuid.uuid5(_NAMESPACE, "cohort_active")
BOOLEAN = 1  # cohort_service.v1.FlagType.FLAG_TYPE_BOOLEAN


def up(migrator, db):
    # Plain tables, not models: the rows are written exactly as peewee's UUIDField stores ids.
    flag = peewee.Table("flag", ("id", "key", "type", "created_at")).bind(db)
    option = peewee.Table("flag_option", ("id", "flag_id", "value", "label", "position")).bind(db)
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    flag.insert(id=FLAG_ID.hex, key="cohort_active", type=BOOLEAN, created_at=now).execute()
    option.insert(
        [
            {
                "id": uuid.uuid5(_NAMESPACE, f"cohort_active={value}").hex,
                "flag_id": FLAG_ID.hex,
                "value": value,
                "label": value.capitalize(),
                "position": position,
            }
            for position, value in enumerate(("true", "false"))
        ]
    ).execute()
