"""What report-service purges in the background (shared.purge): expired drafts, old request ids."""

from __future__ import annotations

import logging
from datetime import datetime

from report_service import expiry, mapping, store, watching
from report_service.drivers import DriverRegistry
from report_service.models import Report, database
from report_service.requests import REQUEST_IDS
from shared.config import Settings
from shared.errors import FailedPrecondition
from shared.purge import Purge

_LOGGER = logging.getLogger(__name__)


def purges(drivers: DriverRegistry, settings: Settings) -> list[Purge]:
    found = [
        Purge(
            "remembered request ids",
            lambda now, limit: REQUEST_IDS.purge(now, settings.idempotency_ttl, limit),
        )
    ]
    if settings.draft_ttl > 0:
        found.append(
            Purge("expired report drafts", lambda now, limit: purge_drafts(drivers, now, limit))
        )
    return found


def purge_drafts(drivers: DriverRegistry, now: datetime, limit: int) -> int:
    """Delete up to limit expired drafts, oldest first, each after its driver's
    before_discard_draft; return how many. A draft whose driver refuses is kept (and still
    answered DRAFT_EXPIRED), logged, and tried again by the next run.

    Claimed FOR UPDATE SKIP LOCKED on PostgreSQL: a draft another replica is purging, or a
    call is writing, is left to it. Drafts are locked without their originals: no write locks
    a draft and then waits on its original, so this waits on nothing.
    """
    cutoff = expiry.DRAFTS.cutoff(now)
    if cutoff is None:
        return 0
    query = (
        Report.select()
        .where(Report.editing.is_null(False) & (Report.updated_at <= cutoff))
        .order_by(Report.updated_at)
        .limit(limit)
    )
    if database.for_update:
        query = query.for_update(skip_locked=True)
    with database.atomic():
        expired = list(query)
        hooked = [row for row in expired if drivers.has_hook(row.type, "before_discard_draft")]
        datasets = store.datasets_of([row.id for row in hooked])
        # The hook's draft message says whether it is outdated: its original's etag, unlocked.
        original_etags = dict(
            Report.select(Report.id, Report.etag)
            .where(Report.id.in_({row.editing_id for row in hooked}))
            .tuples()
        )
        refused = set()
        for row in hooked:
            try:
                drivers.before_discard_draft(
                    row.type,
                    mapping.report_to_proto(
                        row, datasets[row.id], original_etags.get(row.editing_id, "")
                    ),
                )
            except FailedPrecondition as refusal:
                _LOGGER.warning("kept expired draft %r: %s", row.id, refusal.message)
                refused.add(row.id)
        purged = [row for row in expired if row.id not in refused]
        store.delete_reports([row.id for row in purged])
        if purged:
            watching.drafts_expired([(row.editing_id, row.id, row.owner_id) for row in purged])
    return len(purged)
