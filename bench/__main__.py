"""`python -m bench [--quick | --rss]`: measure the services against a baseline, in one run.

Starts a baseline server and both services (production CLI, SQLite and PostgreSQL) as
processes, sets data up through their RPCs and `seed`, drives each scenario with
load-generator processes at C = 1, 16, 64, and prints one table (ratios to the baseline of
the same database and C), the growth curves, and the targets. Everything also goes to
bench/results/<time>.json; the growth plot to bench/results/<time>-growth.png. Then the watch
scenarios (bench.watch: idle watchers, fan-out latency; small with --quick) and, in the full
run or with --models, the server models compared (bench.models).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench import report
from bench.growth import plot, run_growth
from bench.loadgen import Generators
from bench.measure import Row, measure
from bench.scenarios import SETUPS, baseline, seed_catalog
from bench.stores import Stores, postgres_problem
from bench.watch import FULL, QUICK
from tests.processes import start_module, start_service

RESULTS = Path(__file__).parent / "results"
PROFILES = {  # warm-up and measured seconds per point
    "quick": (0.2, 0.3),
    "full": (1.0, 3.0),
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="short windows: under 90 s in all")
    mode.add_argument("--rss", action="store_true", help="only the RSS check (100,000 calls)")
    parser.add_argument("--databases", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument("--concurrency", default="1,16,64", help="calls in flight, e.g. 1,16,64")
    parser.add_argument("--clients", type=int, default=1, help="load-generator processes")
    parser.add_argument("--repeat", type=int, default=1, help="runs per point; medians reported")
    parser.add_argument("--workers", type=int, default=1, help="service processes (SO_REUSEPORT)")
    parser.add_argument("--only", default="", help="run only scenarios whose name has this text")
    parser.add_argument("--no-growth", action="store_true", help="skip the growth curves")
    parser.add_argument("--plot", type=Path, help="also write the growth plot here")
    parser.add_argument("--rss-calls", type=int, default=100_000, help="calls of the RSS check")
    parser.add_argument("--no-watch", action="store_true", help="skip the watch scenarios")
    parser.add_argument(
        "--watchers",
        type=int,
        help=f"watchers of the watch scenarios ({QUICK.watchers} with --quick, else"
        f" {FULL.watchers})",
    )
    parser.add_argument(
        "--models",
        action=argparse.BooleanOptionalAction,
        help="compare the server models (bench.models; default: in the full run only)",
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="services export their spans to an OTLP receiver (python -m tests.otlp)",
    )
    return parser.parse_args(argv)


def _median_row(rows: list[Row]) -> dict:
    first = rows[0].as_dict()
    for key in ("calls_per_second", "p50_ms", "p99_ms", "cpu_us_per_call"):
        first[key] = statistics.median(getattr(r, key) for r in rows)
    first["calls"] = sum(r.calls for r in rows)
    first["errors"] = sum(r.errors for r in rows)
    first["repeats"] = len(rows)
    return first


def _start(service: str, url: str, work: Path, workers: int):
    from tests.processes import free_port

    port = free_port() if workers > 1 else 0
    return start_service(service, url, work / f"{service}.log", port=port, workers=workers)


def run_table(args, generators, stores, work, warmup, duration) -> list[dict]:
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    base = start_module("baseline", "bench.baseline_server", (), os.environ, work / "baseline.log")
    rows: list[dict] = []
    try:
        with base.channel() as channel:
            echo = baseline(channel)
        for database in args.databases.split(","):
            servers = {}
            try:
                scenarios = []
                for service, setup in SETUPS.items():
                    url = stores.url(database, service)
                    if service == "cohort-service":
                        seed_catalog(url, 1000, work)
                    servers[service] = _start(service, url, work, args.workers)
                    with servers[service].channel() as channel:
                        scenarios += setup(channel, max(concurrencies))
                scenarios = [s for s in scenarios if args.only in s.name]
                for concurrency in concurrencies:
                    for scenario in [echo, *scenarios]:
                        server = (
                            base if scenario.service == "baseline" else servers[scenario.service]
                        )
                        if scenario.slow and args.quick and concurrency > 16:
                            continue
                        window = (
                            (max(warmup, 0.5), max(duration, 1.5))
                            if scenario.slow
                            else (warmup, duration)
                        )
                        runs = [
                            measure(generators, server, scenario, database, concurrency, *window)
                            for _ in range(args.repeat)
                        ]
                        row = _median_row(runs)
                        rows.append(row)
                        print(
                            f"  {database:<8} {scenario.name:<34} C={concurrency:<3}"
                            f" {row['calls_per_second']:7.0f}/s p50 {row['p50_ms']:7.2f} ms"
                            f" p99 {row['p99_ms']:7.2f} ms cpu {row['cpu_us_per_call']:6.0f} µs",
                            flush=True,
                        )
            finally:
                for server in servers.values():
                    server.stop()
    finally:
        base.stop()
    return report.with_ratios(rows)


@contextlib.contextmanager
def _tracing(work: Path, results: dict) -> Iterator[None]:
    """An OTLP receiver for the block, where the services started in it export their spans."""
    receiver = start_module("otlp", "tests.otlp", (), os.environ, work / "otlp.log")
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://{receiver.address}"
    os.environ["OTEL_EXPORTER_OTLP_INSECURE"] = "true"
    try:
        yield
    finally:
        del os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"], os.environ["OTEL_EXPORTER_OTLP_INSECURE"]
        receiver.stop()
        results["spans_received"] = receiver.stdout()[-1].split()[1]
        print(f"the OTLP receiver got {results['spans_received']} spans")


def _watch_and_models(args, generators, stores, work, results) -> list[dict]:
    """The watch scenarios and the server models, each when asked for; their targets."""
    from bench import models, watch

    found: list[dict] = []
    warmup, duration = PROFILES["quick" if args.quick else "full"]
    started = time.monotonic()
    if not args.no_watch and (not args.only or any(args.only in n for n in watch.NAMES)):
        size = QUICK if args.quick else FULL
        if args.watchers:
            size = dataclasses.replace(size, watchers=args.watchers)
        results["watch"] = watch.run_watch(
            generators,
            stores,
            work,
            size,
            warmup,
            duration,
            postgres="postgres" in args.databases.split(","),
            only=args.only,
        )
        found += watch.targets(results["watch"])
        print(f"  (watch scenarios: {time.monotonic() - started:.0f} s)", flush=True)
    if args.models if args.models is not None else not (args.quick or args.only):
        results["models"] = models.run_models(
            generators, work, streams=FULL.watchers, warmup=warmup, duration=duration
        )
        print()
        print(models.table(results["models"]))
    return found


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    warmup, duration = PROFILES["quick" if args.quick else "full"]
    databases = args.databases.split(",")
    if "postgres" in databases and (problem := postgres_problem()):
        print(f"PostgreSQL unreachable ({problem}); measuring SQLite only", file=sys.stderr)
        args.databases = ",".join(d for d in databases if d != "postgres")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    started = time.monotonic()
    generators = Generators(args.clients)
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch, contextlib.ExitStack() as stack:
        work = Path(scratch)
        if args.tracing:
            stack.enter_context(_tracing(work, results))
        stores = Stores(work)
        try:
            if args.rss:
                from bench.rss import run_rss

                results["rss"] = run_rss(generators, stores, work, args.rss_calls)
                found = report.targets([], [], results["rss"])
            else:
                rows = run_table(args, generators, stores, work, warmup, duration)
                points = (
                    [] if args.no_growth else run_growth(generators, stores, work, warmup, duration)
                )
                results.update(rows=rows, growth=points)
                print()
                print(report.table(rows))
                if points:
                    print()
                    print(report.growth_table(points))
                    plot(points, RESULTS / f"{stamp}-growth.png")
                    if args.plot:
                        plot(points, args.plot)
                found = report.targets(rows, points)
                found += _watch_and_models(args, generators, stores, work, results)
        finally:
            generators.close()
            stores.drop()
    results["targets"] = found
    results["seconds"] = time.monotonic() - started
    print()
    print(report.targets_table(found))
    out = RESULTS / f"{stamp}.json"
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"\n{results['seconds']:.0f} s; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
