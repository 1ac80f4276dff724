"""What a deployable service tells the platform about itself."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import peewee

from shared.config import Option, Settings
from shared.events import EventStore
from shared.purge import Purge


@dataclass(frozen=True)
class Command:
    """An extra CLI sub-command, such as `cohort-service seed FILE.json`."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]  # called with the database open and migrated


@dataclass(frozen=True)
class ServiceDefinition:
    """A service's name, store and servicers; shared.cli and shared.server do the rest."""

    name: str  # "report-service"; also the ErrorInfo domain
    env_prefix: str  # "REPORT" -> REPORT_HOST, REPORT_PORT, REPORT_DATABASE_URL, ...
    default_port: int
    database: peewee.DatabaseProxy
    migrations: Path
    # Registers the servicers on a server, configured by the settings; returns the purges the
    # server runs in the background (shared.purge).
    add_servicers: Callable[[grpc.Server, Settings], Sequence[Purge]]
    service_names: tuple[str, ...]  # full names, for health and reflection
    commands: Mapping[str, Command] = field(default_factory=dict)
    # The shared.config.LIFETIMES it reads from flags and environment (`--draft-ttl`, ...).
    lifetimes: tuple[str, ...] = ("idempotency_ttl", "purge_interval")
    options: tuple[Option, ...] = ()  # the service's own whole-number settings, on `serve`
    # Its event store (shared.events), if it serves watch streams: the server runs its feed.
    events: EventStore | None = None
