"""The lifetime settings: durations with units, floors, and only the ones a service reads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cohort_service.server import SERVICE as COHORT
from report_service.server import SERVICE as REPORT
from shared.config import DAY, ConfigError, load_settings
from tests.support import TEST_SECRET

ENV = {"AUTH_JWT_SECRET": TEST_SECRET}


def _settings(definition, flags=None, **environ):
    return load_settings(
        definition.name,
        definition.env_prefix,
        definition.default_port,
        flags or {},
        {**ENV, **environ},
        lifetimes=definition.lifetimes,
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("24h", DAY), ("30d", 30 * DAY), ("1.5h", 5400)],
)
def test_a_lifetime_is_seconds_or_a_number_with_a_unit(text, seconds):
    assert _settings(REPORT, REPORT_DRAFT_TTL=text).draft_ttl == seconds


def test_the_defaults_are_those_the_contract_names():
    report, cohort = _settings(REPORT), _settings(COHORT)
    assert (report.draft_ttl, report.idempotency_ttl) == (30 * DAY, DAY)
    assert (cohort.proposal_ttl, cohort.idempotency_ttl) == (7 * DAY, DAY)
    assert report.clock_offset == cohort.clock_offset == 0


@pytest.mark.parametrize("text", ["30 days", "-1", "abc", "1w", ""])
def test_a_malformed_lifetime_is_refused_naming_its_variable(text):
    if text == "":  # empty is unset: the default
        assert _settings(REPORT, REPORT_DRAFT_TTL=text).draft_ttl == 30 * DAY
        return
    with pytest.raises(ConfigError, match="REPORT_DRAFT_TTL"):
        _settings(REPORT, REPORT_DRAFT_TTL=text)


@pytest.mark.parametrize("definition", [REPORT, COHORT], ids=["report", "cohort"])
def test_idempotency_records_are_kept_at_least_a_day(definition):
    variable = f"{definition.env_prefix}_IDEMPOTENCY_TTL"
    with pytest.raises(ConfigError, match=f"{variable} must be at least 24h"):
        _settings(definition, **{variable: "23h"})
    assert _settings(definition, **{variable: "2d"}).idempotency_ttl == 2 * DAY


def test_a_flag_wins_over_the_environment_and_zero_turns_expiry_off():
    assert _settings(REPORT, {"draft_ttl": "0"}, REPORT_DRAFT_TTL="1d").draft_ttl == 0
    assert _settings(COHORT, COHORT_PROPOSAL_TTL="0").proposal_ttl == 0


def test_a_service_reads_only_its_own_lifetimes():
    # cohort-service has no drafts that expire by REPORT_DRAFT_TTL's rule: not read, not checked
    assert _settings(COHORT, COHORT_DRAFT_TTL="nonsense").draft_ttl == 30 * DAY
    assert _settings(REPORT, REPORT_PROPOSAL_TTL="nonsense").proposal_ttl == 7 * DAY


def test_the_clock_offset_is_a_number_of_seconds():
    assert _settings(REPORT, REPORT_CLOCK_OFFSET="-3600").clock_offset == -3600
    with pytest.raises(ConfigError, match="REPORT_CLOCK_OFFSET"):
        _settings(REPORT, REPORT_CLOCK_OFFSET="nan")


def test_serve_refuses_to_start_with_a_short_idempotency_ttl(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "report_service", "serve", "--port", "0"],
        env={
            **ENV,
            "PATH": "/usr/bin:/bin",
            "REPORT_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}",
            "REPORT_IDEMPOTENCY_TTL": "1h",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "REPORT_IDEMPOTENCY_TTL must be at least 24h" in done.stderr


def test_watch_events_are_kept_72_hours_by_default_and_at_least_a_day():
    assert _settings(REPORT).event_retention == 3 * DAY
    with pytest.raises(ConfigError, match="REPORT_EVENT_RETENTION must be at least 24h"):
        _settings(REPORT, REPORT_EVENT_RETENTION="12h")
    assert _settings(REPORT, REPORT_EVENT_RETENTION="7d").event_retention == 7 * DAY
