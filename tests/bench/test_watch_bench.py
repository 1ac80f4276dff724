"""bench.watch: the watch scenarios count real deliveries and hold real watchers.

Small numbers and short windows: this proves the harness, `python -m bench` gives the figures.
"""

from __future__ import annotations

import math

import pytest

from bench.loadgen import Generators
from bench.watch import Size, run_capacity, run_fanout
from tests.conftest import _postgres_test_url


@pytest.mark.postgres
def test_fanout_counts_each_write_once_at_every_watcher_of_both_processes(tmp_path, postgres_admin):
    size = Size(watchers=20, reports=4, rate=20, seconds=1.0, rounds=1)
    figures = run_fanout(_postgres_test_url(postgres_admin), tmp_path, size)
    assert figures["opened"] == 20
    assert figures["writes"] == 20 and figures["write_errors"] == 0
    # 20 writes, each to a report 5 watchers watch, 10 of them on the other process.
    assert figures["deliveries"] == figures["deliveries_expected"] == 100
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] < 5_000
    assert not figures["stream_errors"]


def test_capacity_holds_the_watchers_while_it_measures_the_calls(tmp_path):
    generators = Generators(1)
    try:
        figures = run_capacity(generators, f"sqlite:///{tmp_path / 'r.db'}", tmp_path, 20, 0.1, 0.3)
    finally:
        generators.close()
    assert figures["opened"] == 20 and figures["ended_early"] == 0
    for name in ("health Check", "GetReport"):
        for watchers in (0, 20):
            row = figures[f"{name} {watchers}"]
            assert row["errors"] == 0 and row["calls"] > 0, (name, watchers)
    assert not math.isnan(figures["rss_per_watcher_kb"])
