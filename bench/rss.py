"""`python -m bench --rss`: does a service's memory settle, or grow with the calls it serves?

Each service (SQLite) serves a mix of its scenarios at C=16; its RSS is read once 10,000
calls have been served and again after `calls` (100,000 by default).
"""

from __future__ import annotations

from pathlib import Path

from bench.loadgen import Generators, Load
from bench.scenarios import SETUPS, seed_catalog
from tests.processes import start_service

CONCURRENCY = 16
WINDOW_SECONDS = 5.0
EARLY = 10_000


def run_rss(generators: Generators, stores, work: Path, calls: int) -> dict:
    figures = {}
    for service, setup in SETUPS.items():
        url = stores.url("sqlite", f"rss-{service}")
        if service == "cohort-service":
            seed_catalog(url, 1000, work)
        server = start_service(service, url, work / f"rss-{service}.log")
        try:
            with server.channel() as channel:
                scenarios = [s for s in setup(channel, CONCURRENCY) if "1,000" not in s.name]
            # Coroutine k runs every scenario's k-th sequence in turn: a mix of reads,
            # writes, retries and acks.
            mixed = [
                [step for s in scenarios for step in s.sequences[k % len(s.sequences)]]
                for k in range(CONCURRENCY)
            ]
            served, early, errors = 0, None, 0
            while served < calls:
                result = generators.run(
                    Load(server.address, mixed, CONCURRENCY, 0.0, WINDOW_SECONDS),
                    on_start=lambda: None,
                    on_end=lambda: None,
                )
                served += len(result.latencies)
                errors += len(result.errors)
                if early is None and served >= EARLY:
                    early = (served, server.rss_bytes())
                mib = server.rss_bytes() / 2**20
                print(f"  rss {service}: {served:>7} calls, RSS {mib:.1f} MiB", flush=True)
            figures[service] = {
                "calls_early": early[0],
                "rss_after_10000": early[1],
                "calls": served,
                "rss_after_100000": server.rss_bytes(),
                "errors": errors,
            }
        finally:
            server.stop()
    return figures
