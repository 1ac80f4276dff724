"""When report drafts expire (REPORT_DRAFT_TTL), and how every read treats an expired one.

A draft expires REPORT_DRAFT_TTL after its last change (updated_at). From then on it is gone
for every RPC, whether or not the purge (report_service.purges) has deleted it yet: the
store checks each draft it loads against the clock (shared.clock), and answers NOT_FOUND
with reason DRAFT_EXPIRED while the row is there.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.clock import utcnow
from shared.columns import as_datetime
from shared.config import Settings
from shared.errors import NotFound

DRAFT_EXPIRED = "DRAFT_EXPIRED"

# Set from the settings when the server starts (process-wide, as the database proxy is).
_ttl: timedelta | None = timedelta(seconds=Settings.draft_ttl)


def configure(draft_ttl: float) -> None:
    """Drafts expire draft_ttl seconds after their last change; 0: never."""
    global _ttl
    _ttl = timedelta(seconds=draft_ttl) if draft_ttl > 0 else None


def ttl() -> timedelta | None:
    return _ttl


def expire_time(row: Any) -> datetime | None:
    """When row (a Report or StoredReport) expires; None for an original, or with no TTL."""
    if _ttl is None or row.editing_id is None:
        return None
    return as_datetime(row.updated_at) + _ttl


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
            f"untouched for {_ttl}; EditReport or PutReportDraft makes a new one",
            reason=DRAFT_EXPIRED,
            metadata={"report_id": row.editing_id, "expire_time": f"{expired.isoformat()}Z"},
        )
