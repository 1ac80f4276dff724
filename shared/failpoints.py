"""Failpoints: named places inside write transactions where a test build can crash the process.

Service code calls `failpoint("report.commit.after_update")` at the points where a crash is
most likely to expose a half-done write. In production nothing is armed and a call costs a
dict lookup. Only a test launcher (tests/reliability/armed_service.py) calls `arm`, before
it runs the production main; the console scripts and `python -m <service>` never do, so the
variable a launcher reads has no effect on a deployed service.

A spec arms some failpoints with an action each, comma-separated:

    report.commit.after_update=kill@0.2     SIGKILL this process with probability 0.2 (seeded)
    cohort.patch.after_claim=kill#3         SIGKILL this process on the 3rd hit
    cohort.ack.after_decision=raise#1       raise FailpointError on the 1st hit
"""

from __future__ import annotations

import os
import random
import signal
import threading
from dataclasses import dataclass, field

# Every failpoint the services call, so that a spec naming another one is refused.
FAILPOINTS = (
    "report.commit.after_update",
    "report.commit.after_datasets",
    "report.commit.after_draft_delete",
    "report.commit.before_commit",
    "report.rollback.after_update",
    "cohort.patch.after_claim",
    "cohort.patch.after_save",
    "cohort.patch.before_commit",
    "cohort.ack.after_decision",
)
ACTIONS = ("kill", "raise")


class FailpointError(RuntimeError):
    """What an armed `raise` failpoint raises: an unexpected failure inside a transaction."""


@dataclass
class _Armed:
    action: str
    probability: float | None  # kill@p
    nth: int | None  # kill#n
    random: random.Random
    hits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fires(self) -> bool:
        with self.lock:
            self.hits += 1
            if self.nth is not None:
                return self.hits == self.nth
            assert self.probability is not None  # kill@p, when not kill#n
            return self.random.random() < self.probability


_ARMED: dict[str, _Armed] = {}


def failpoint(name: str) -> None:
    """Crash here if a test build armed name; otherwise do nothing."""
    armed = _ARMED.get(name)
    if armed is None or not armed.fires():
        return
    if armed.action == "kill":
        os.write(2, f"failpoint {name} fired: SIGKILL\n".encode())  # for the harness's figures
        os.kill(os.getpid(), signal.SIGKILL)
    raise FailpointError(f"failpoint {name} fired")


def arm(spec: str, seed: int = 0) -> list[str]:
    """Arm the failpoints a spec names (see the module docstring); returns their names."""
    armed: dict[str, _Armed] = {}
    for index, item in enumerate(part.strip() for part in spec.split(",") if part.strip()):
        name, equals, rule = item.partition("=")
        if not equals or name not in FAILPOINTS:
            raise ValueError(f"failpoint spec {item!r}: expected NAME=ACTION@P or NAME=ACTION#N")
        if "@" in rule:
            action, _, value = rule.partition("@")
            probability, nth = float(value), None
            if not 0 < probability <= 1:
                raise ValueError(f"failpoint spec {item!r}: probability must be in (0, 1]")
        else:
            action, _, value = rule.partition("#")
            probability, nth = None, int(value)
            if nth < 1:
                raise ValueError(f"failpoint spec {item!r}: the hit number starts at 1")
        if action not in ACTIONS:
            raise ValueError(f"failpoint spec {item!r}: action must be one of {ACTIONS}")
        armed[name] = _Armed(action, probability, nth, random.Random(seed * 1_000 + index))
    _ARMED.clear()
    _ARMED.update(armed)
    return sorted(armed)


def armed() -> list[str]:
    """The failpoints armed in this process (none outside a test launcher)."""
    return sorted(_ARMED)


def disarm() -> None:
    _ARMED.clear()
