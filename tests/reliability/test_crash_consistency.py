"""Crash consistency: SIGKILLed at random moments and inside its write transactions (via
failpoints), a service restarted on the same database has lost no acknowledged write, shows
no half-applied one, and its idempotency records agree with the data.

The suite runs a few rounds per service and database; a long run (figures printed with -s):

    CRASH_ROUNDS=50 .venv/bin/python -m pytest -s tests/reliability/test_crash_consistency.py
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import _postgres_test_url
from tests.reliability import crash

ROUNDS = int(os.environ.get("CRASH_ROUNDS", "3"))
SEED = int(os.environ.get("CRASH_SEED", "1"))
WORKLOADS = {"report": crash.ReportWorkload, "cohort": crash.CohortWorkload}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def crash_url(request, tmp_path) -> str:
    """One empty database for the whole crash run (both services make their own tables)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crash.db'}"
    return _postgres_test_url(request.getfixturevalue("postgres_admin"))


@pytest.mark.parametrize("service", sorted(WORKLOADS))
def test_a_service_killed_at_random_and_at_its_failpoints_loses_and_half_applies_nothing(
    service, crash_url, tmp_path
):
    plan = crash.CrashPlan(rounds=ROUNDS, seed=SEED)
    workload = WORKLOADS[service](plan.threads)
    figures = crash.run(workload, crash_url, tmp_path, plan)
    print(figures.line(f"crash {service} on {crash_url.partition(':')[0]}"))
    assert figures.rounds == ROUNDS
    assert figures.acknowledged > 0
    assert figures.checked > 0
