"""The services' clock: now as naive UTC, moved by the test-only clock offset.

Every time a service stores or compares (created_at, updated_at, expiry, purging) comes from
here, so that a test can move a whole service into the future through a setting
(`<PREFIX>_CLOCK_OFFSET`, see shared.config) instead of patching code or waiting. Token
validation keeps the real time: a token's `exp` is the identity provider's clock, not ours.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.columns import as_datetime

# Process-wide, as the database proxy is: a process serves one service at a time.
_offset = timedelta(0)


def utcnow() -> datetime:
    """Now as a naive UTC datetime: the one form both SQLite and PostgreSQL store alike."""
    return datetime.now(UTC).replace(tzinfo=None) + _offset


def set_offset(seconds: float) -> None:
    """Move the clock seconds ahead of the real time (tests only; 0 in production)."""
    global _offset
    _offset = timedelta(seconds=seconds)


class Lifetime:
    """How long something lives before it expires: set from a setting when the server starts
    (process-wide, as the database proxy is); 0 means forever."""

    def __init__(self, seconds: float) -> None:
        self.set(seconds)

    def set(self, seconds: float) -> None:
        self.ttl = timedelta(seconds=seconds) if seconds > 0 else None

    def expires(self, start: datetime | str) -> datetime | None:
        """When what began at start (a stored time, or its text) expires; None: never."""
        return None if self.ttl is None else as_datetime(start) + self.ttl

    def cutoff(self, now: datetime | None = None) -> datetime | None:
        """What began at or before this has expired by now; None: nothing expires."""
        return None if self.ttl is None else (now or utcnow()) - self.ttl
