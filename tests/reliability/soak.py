"""Soak: both services under mixed load for a bounded time; no errors, bounded RSS, exact data.

    .venv/bin/python -m tests.reliability.soak --seconds 120

starts cohort-service and report-service as processes (the production CLI) on PostgreSQL,
each in a fresh schema of TEST_POSTGRES_URL (`--database sqlite` for files instead), seeds
the cohort catalog with the `seed` command, and runs `--clients` client processes
(multiprocessing, spawn). Each runs `--actors` report actors and as many cohort actors
(tests.reliability.workload): principals that each own one report or cohort draft, read it
back after their own writes, and log every write acknowledged to them in a file of their
process. Meanwhile the services' RSS is sampled every `--sample-every` seconds.

It passes when:
- no call failed at all, and no read disagreed with the writes acknowledged before it
  (nothing is an expected error: the load stays below the services' concurrency limits);
- RSS stayed bounded: the last sample of each service is at most `--rss-growth` (1.2) times
  its first sample after the warm-up (a fifth of the run, at least 2 s);
- both services exit 0 on SIGTERM, and new servers on the same databases show every
  actor's last acknowledged write, with matching counts (a draft's revision = its patches;
  a report's activities = its commits);
- no service logged an ERROR or a traceback.

It prints the calls by method (count, p50, p99), the writes verified and the RSS series, and
exits 1 when a check failed. `tests/reliability/test_soak.py` runs a short one in the suite.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

from bench.scenarios import seed_catalog
from cohort_service.server import SERVICE as COHORT
from report_service.server import SERVICE as REPORT
from tests.conftest import POSTGRES_URL, _postgres_test_url
from tests.processes import ServiceProcess, free_port, start_service
from tests.reliability.workload import (
    DEPARTMENTS,
    AckLog,
    CohortActor,
    Recorder,
    ReportActor,
    drive,
    own_channel,
    read_ack_logs,
    verify,
)
from tests.support import serve

SERVICES = ("cohort-service", "report-service")
KIND = {"cohort-service": "cohort", "report-service": "report"}
LOG_PROBLEMS = re.compile(r" ERROR |Traceback")


@dataclass
class Options:
    seconds: float = 120.0
    clients: int = 3
    actors: int = 3  # report actors per client process, and as many cohort actors
    database: str = "postgres"
    workers: int = 1
    sample_every: float = 5.0
    rss_growth: float = 1.2
    work: Path | None = None


@dataclass
class Outcome:
    """What a soak found; `problems` empty means it passed."""

    calls: dict[str, int] = field(default_factory=dict)  # "method code" -> count
    seconds: dict[str, list[float]] = field(default_factory=dict)  # method -> durations
    errors: list[str] = field(default_factory=list)
    rss: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # (s, bytes)
    warm_index: int = 0
    entities: int = 0
    writes: int = 0
    elapsed: float = 0.0
    problems: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Client processes
# ---------------------------------------------------------------------------


def _client_main(
    index: int, addresses: dict[str, str], options: Options, log_path: Path, results, go
) -> None:
    """One client process: set up its actors, say so, then step them for options.seconds."""
    recorder, errors = Recorder(keep=False), []
    with log_path.open("w") as log:
        acks = AckLog(log)
        actors = [ReportActor(f"soak-{index}-r{n}", acks, recorder) for n in range(options.actors)]
        actors += [CohortActor(f"soak-{index}-c{n}", acks, recorder) for n in range(options.actors)]
        channels = {actor.name: own_channel(addresses[_service_of(actor)]) for actor in actors}
        stop = threading.Event()

        def on_error(actor, error) -> bool:
            # Every failure is unexpected; the actor stops, since after a failed write it no
            # longer knows what the store must hold.
            errors.append(f"{actor.name}: {type(error).__name__}: {error}"[:500])
            return False

        threads = []
        try:
            for actor in actors:
                actor.setup(channels[actor.name])
        except Exception as error:  # a failed setup is reported, and fails the run
            errors.append(f"client {index} setup: {error!r}"[:500])
        results.put(("ready", index))
        go.wait(timeout=600)
        if not errors:
            threads = drive(actors, channels, stop, seed=index, on_error=on_error)
            time.sleep(options.seconds)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        for channel in channels.values():
            channel.close()
    results.put(
        ("done", {"counts": recorder.counts, "seconds": recorder.seconds, "errors": errors})
    )


def _service_of(actor) -> str:
    return "report-service" if isinstance(actor, ReportActor) else "cohort-service"


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def _databases(options: Options, work: Path):
    """{service: url}, and a function that drops what was created."""
    if options.database == "sqlite":
        return {
            service: f"sqlite:///{work / f'{service}.db'}" for service in SERVICES
        }, lambda: None
    admin = psycopg2.connect(POSTGRES_URL, application_name="soak")
    admin.autocommit = True
    schemas = {service: f"soak_{uuid.uuid4().hex[:8]}_{KIND[service]}" for service in SERVICES}
    urls = {service: _postgres_test_url(admin, schema) for service, schema in schemas.items()}

    def drop() -> None:
        with admin.cursor() as cursor:
            for schema in schemas.values():
                cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()

    return urls, drop


def _start(urls: dict[str, str], work: Path, options: Options) -> dict[str, ServiceProcess]:
    """Both services at once (each start waits for its `listening on` line)."""
    with futures.ThreadPoolExecutor(len(SERVICES)) as pool:
        started = {
            service: pool.submit(
                start_service,
                service,
                urls[service],
                work / f"{service}.log",
                port=free_port() if options.workers > 1 else 0,
                workers=options.workers,
            )
            for service in SERVICES
        }
        futures.wait(started.values())
    failed = [future.exception() for future in started.values() if future.exception()]
    if failed:  # stop the one that did start before reporting the one that did not
        for future in started.values():
            if future.exception() is None:
                future.result().kill()
        raise failed[0]
    return {service: future.result() for service, future in started.items()}


def _stop(services: dict[str, ServiceProcess], outcome: Outcome) -> None:
    """SIGTERM to both, then their exit statuses: each drains at the same time."""
    for running in services.values():
        running.process.send_signal(signal.SIGTERM)
    for service, running in services.items():
        if running.stop(timeout=60) != 0:
            outcome.problems.append(f"{service} exited with {running.process.returncode}")


def run(options: Options) -> Outcome:
    work = options.work or Path(tempfile.mkdtemp(prefix="soak-"))
    work.mkdir(parents=True, exist_ok=True)
    urls, drop = _databases(options, work)
    outcome = Outcome()
    try:
        seed_catalog(urls["cohort-service"], DEPARTMENTS, work)
        services = _start(urls, work, options)
        try:
            _load(services, options, work, outcome)
        finally:
            _stop(services, outcome)
        _verify(urls, work, options, outcome)
        for log in sorted(work.glob("*.log")):
            bad = [line for line in log.read_text().splitlines() if LOG_PROBLEMS.search(line)]
            if bad:
                outcome.problems.append(f"{log.name}: {len(bad)} error lines, first: {bad[0]}")
    finally:
        drop()
    _check(outcome, options)
    return outcome


def _load(services: dict[str, ServiceProcess], options: Options, work: Path, outcome: Outcome):
    context = multiprocessing.get_context("spawn")
    results, go = context.Queue(), context.Event()
    addresses = {service: running.address for service, running in services.items()}
    clients = [
        context.Process(
            target=_client_main,
            args=(index, addresses, options, work / f"acks-{index}.jsonl", results, go),
            daemon=True,
        )
        for index in range(options.clients)
    ]
    for client in clients:
        client.start()
    for _ in clients:  # every client set up: the measured window starts together
        assert results.get(timeout=300)[0] == "ready"
    go.set()
    started = time.monotonic()
    outcome.rss = {service: [] for service in services}
    warmup, next_sample = max(2.0, options.seconds / 5), 0.0
    summaries = []
    # Results are read as they come: a client cannot exit before its queue is drained.
    while len(summaries) < len(clients):
        now = time.monotonic() - started
        if now >= next_sample and now <= options.seconds:
            for service, running in services.items():
                outcome.rss[service].append((now, running.tree_rss_bytes()))
            if not outcome.warm_index and now >= warmup:
                outcome.warm_index = len(outcome.rss[SERVICES[0]]) - 1
            next_sample += options.sample_every
        try:
            summaries.append(results.get(timeout=0.1)[1])
        except queue.Empty:
            if not any(client.is_alive() for client in clients):
                outcome.problems.append("a client process ended without its results")
                break
    outcome.elapsed = time.monotonic() - started
    for summary in summaries:
        for key, count in summary["counts"].items():
            outcome.calls[key] = outcome.calls.get(key, 0) + count
        for method, values in summary["seconds"].items():
            outcome.seconds.setdefault(method, []).extend(values)
        outcome.errors.extend(summary["errors"])
    for client in clients:
        client.join(timeout=60)
        if client.exitcode != 0:
            outcome.problems.append(f"client process exited with {client.exitcode}")


def _verify(urls: dict[str, str], work: Path, options: Options, outcome: Outcome) -> None:
    """New servers on the same databases, checked against every client's log."""
    writes = read_ack_logs(path.read_text() for path in sorted(work.glob("acks-*.jsonl")))
    outcome.writes = sum(len(entries) for entries in writes.values())
    with (
        serve(COHORT, urls["cohort-service"]) as cohort,
        serve(REPORT, urls["report-service"]) as report,
    ):
        channels = {"cohort": cohort.channel, "report": report.channel}
        outcome.entities, mismatches = verify(writes, channels)
    outcome.problems.extend(mismatches)
    expected = options.clients * options.actors * 2
    if outcome.entities != expected:
        outcome.problems.append(f"{outcome.entities} actors logged writes, expected {expected}")


def _check(outcome: Outcome, options: Options) -> None:
    failed = {key: n for key, n in outcome.calls.items() if not key.endswith(" OK")}
    if failed or outcome.errors:
        outcome.problems.append(f"unexpected errors: {failed} {outcome.errors[:5]}")
    for service, series in outcome.rss.items():
        if len(series) <= outcome.warm_index:
            outcome.problems.append(f"{service}: too few RSS samples")
            continue
        warm, last = series[outcome.warm_index][1], series[-1][1]
        if last > options.rss_growth * warm:
            outcome.problems.append(
                f"{service}: RSS grew from {warm / 2**20:.1f} MB after warm-up to "
                f"{last / 2**20:.1f} MB (more than x{options.rss_growth})"
            )


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(outcome: Outcome, options: Options) -> str:
    total = sum(outcome.calls.values())
    lines = [
        f"soak: {options.seconds:.0f} s, {options.clients} client processes x "
        f"{options.actors * 2} actors, {options.database}, --workers {options.workers}",
        f"calls: {total} in {outcome.elapsed:.1f} s ({total / max(outcome.elapsed, 1e-9):.0f}/s)",
    ]
    for method in sorted(outcome.seconds):
        values = outcome.seconds[method]
        ok = outcome.calls.get(f"{method} OK", 0)
        p50, p99 = statistics.median(values) * 1000, _percentile(values, 0.99) * 1000
        lines.append(
            f"  {method:<26} {ok:>7} OK of {len(values):>7}   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms"
        )
    lines.append(
        f"writes verified: {outcome.writes} acknowledged writes of {outcome.entities} actors"
    )
    for service, series in outcome.rss.items():
        figures = " ".join(f"{mb / 2**20:.1f}" for _, mb in series)
        lines.append(f"RSS {service} (MB, every {options.sample_every:g} s): {figures}")
        if len(series) > outcome.warm_index:
            warm, last = series[outcome.warm_index][1], series[-1][1]
            lines.append(
                f"  after warm-up {warm / 2**20:.1f} MB, last {last / 2**20:.1f} MB "
                f"(x{last / warm:.3f}, limit x{options.rss_growth})"
            )
    lines.append("PASS" if not outcome.problems else "FAIL:\n  " + "\n  ".join(outcome.problems))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.soak", description=__doc__)
    defaults = Options()
    parser.add_argument("--seconds", type=float, default=defaults.seconds)
    parser.add_argument("--clients", type=int, default=defaults.clients)
    parser.add_argument("--actors", type=int, default=defaults.actors)
    parser.add_argument("--database", choices=("postgres", "sqlite"), default=defaults.database)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--sample-every", type=float, default=defaults.sample_every)
    parser.add_argument("--rss-growth", type=float, default=defaults.rss_growth)
    parser.add_argument("--work", type=Path, help="where logs go (default: a new temp folder)")
    options = Options(**vars(parser.parse_args(argv)))
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C: services stopped, schemas dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    outcome = run(options)
    print(summary(outcome, options))
    return 0 if not outcome.problems else 1


if __name__ == "__main__":
    sys.exit(main())
