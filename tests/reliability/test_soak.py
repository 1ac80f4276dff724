"""A short soak in the suite: both services, PostgreSQL, client processes, exact data.

The long run is one command (see tests/reliability/soak.py):

    .venv/bin/python -m tests.reliability.soak --seconds 120
"""

from __future__ import annotations

import pytest

from tests.reliability.soak import Options, run, summary

pytestmark = pytest.mark.postgres


def test_a_short_soak_has_no_errors_bounded_rss_and_every_acknowledged_write(
    postgres_admin, tmp_path
):
    options = Options(seconds=5, clients=2, actors=2, sample_every=0.5, work=tmp_path)

    outcome = run(options)

    print(summary(outcome, options))
    assert not outcome.problems
    assert outcome.entities == 8
    assert outcome.writes > outcome.entities  # more than the setup's one write each
    assert all(key.endswith(" OK") for key in outcome.calls)
    assert sum(outcome.calls.values()) > 100
