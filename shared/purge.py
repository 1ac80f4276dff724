"""Purging what expired, inside every service process, in bounded runs.

A service hands shared.server its purges (ServiceDefinition.add_servicers returns them): each
deletes (or rejects) at most `limit` expired rows in one short transaction and says how many.
A Purger thread runs them every `--purge-interval` seconds, again after a second while a run
was full, and logs each run that purged anything. Any number of replicas may purge one
database at once: a purge claims its rows FOR UPDATE SKIP LOCKED on PostgreSQL, so replicas
take different rows and none waits on another's; SQLite runs one write transaction at a time.
A run that fails (the database is down) is logged and tried again at the next interval.

Expiry never waits for a purge: the reads compare expiry times with the clock themselves.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import peewee

from shared.clock import utcnow

_LOGGER = logging.getLogger(__name__)

BATCH = 200  # rows per purge per run: each run's transaction stays short
_BACKLOG_PAUSE = 1.0  # seconds before the next run when a run was full


@dataclass(frozen=True)
class Purge:
    """One kind of expired row: what it is (for the logs) and how to purge a batch of it."""

    what: str  # "expired report drafts"
    run: Callable[[datetime, int], int]  # (now, limit) -> rows purged, at most limit


class Purger:
    """Runs a service's purges on a thread of its own until stopped."""

    def __init__(self, database: peewee.Database, purges: Sequence[Purge], interval: float) -> None:
        self._database = database
        self._purges = tuple(purges)
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="purger", daemon=True)

    def start(self) -> None:
        if self._purges and self._interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def run_once(self, limit: int = BATCH) -> dict[str, int]:
        """Run each purge once; how many rows each purged (a failed one is logged, absent)."""
        purged = {}
        for purge in self._purges:
            try:
                with self._database.connection_context():  # back to the pool after the run
                    purged[purge.what] = count = purge.run(utcnow(), limit)
            except Exception as exc:  # the next run tries again; nothing was half done
                _LOGGER.warning("purging %s failed: %s: %s", purge.what, type(exc).__name__, exc)
                continue
            if count:
                _LOGGER.info("purged %d %s", count, purge.what)
        return purged

    def _loop(self) -> None:
        # Replicas started together spread their runs over the first interval.
        pause = self._interval * random.uniform(0.5, 1.0)
        while not self._stopping.wait(pause):
            purged = self.run_once()
            full = any(count >= BATCH for count in purged.values())
            pause = min(_BACKLOG_PAUSE, self._interval) if full else self._interval
