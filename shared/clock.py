"""The services' clock: now as naive UTC, moved by the test-only clock offset.

Every time a service stores or compares (created_at, updated_at, expiry, purging) comes from
here, so that a test can move a whole service into the future through a setting
(`<PREFIX>_CLOCK_OFFSET`, see shared.config) instead of patching code or waiting. Token
validation keeps the real time: a token's `exp` is the identity provider's clock, not ours.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# Process-wide, as the database proxy is: a process serves one service at a time.
_offset = timedelta(0)


def utcnow() -> datetime:
    """Now as a naive UTC datetime: the one form both SQLite and PostgreSQL store alike."""
    return datetime.now(UTC).replace(tzinfo=None) + _offset


def set_offset(seconds: float) -> None:
    """Move the clock seconds ahead of the real time (tests only; 0 in production)."""
    global _offset
    _offset = timedelta(seconds=seconds)
