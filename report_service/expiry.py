"""When report drafts expire (REPORT_DRAFT_TTL), and how every read treats an expired one.

A draft expires REPORT_DRAFT_TTL after its last change (updated_at). From then on it is gone
for every RPC, whether or not the purge (report_service.purges) has deleted it yet: the
store checks each draft it loads against the clock (shared.clock), and answers NOT_FOUND
with reason DRAFT_EXPIRED while the row is there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.clock import Lifetime, utcnow
from shared.config import Settings
from shared.errors import NotFound

DRAFT_EXPIRED = "DRAFT_EXPIRED"

DRAFTS = Lifetime(Settings.draft_ttl)  # REPORT_DRAFT_TTL, set by report_service.server


def expire_time(row: Any) -> datetime | None:
    """When row (a Report or StoredReport) expires; None for an original, or with no TTL."""
    return None if row.editing_id is None else DRAFTS.expires(row.updated_at)


def is_expired(row: Any, now: datetime | None = None) -> bool:
    expires = expire_time(row)
    return expires is not None and expires <= (now or utcnow())


def check_live(row: Any) -> None:
    """NOT_FOUND (DRAFT_EXPIRED) if row is an expired draft."""
    if is_expired(row):
        expired = expire_time(row)
        assert expired is not None  # else is_expired is False
        raise NotFound(
            f"your draft of {row.editing_id!r} expired at {expired.isoformat()}Z, "
            f"untouched for {DRAFTS.ttl}; EditReport or PutReportDraft makes a new one",
            reason=DRAFT_EXPIRED,
            metadata={"report_id": row.editing_id, "expire_time": f"{expired.isoformat()}Z"},
        )
