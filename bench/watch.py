"""The watch scenarios of `python -m bench` (issue 11): idle watchers, and fan-out latency.

- capacity: one report-service process (SQLite). Health Check and GetReport at C=16 with no
  watch open, then with `watchers` idle WatchReport streams (a bench.watchers process, one
  principal each: the per-principal cap is not what is measured); the server's RSS before
  and with them gives the RSS per idle watcher. Goal: p99 with them ≤ 1.5 x without, RSS
  ≤ 50 KB per watcher.
- fan-out: two report-service processes on one PostgreSQL database; `watchers` WatchReport
  streams spread over both and over `reports` reports; a writer makes `rate` UpdateReport
  calls a second on those reports, alternating processes, so that most deliveries cross
  processes. Latency is from the event's create_time (the writing process's clock, stamped
  in the write's transaction, just before its commit) to the event's arrival in the watcher
  process (time.time(), same host): a little more than commit → delivery. Goal: p99 ≤ 100 ms.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import field_mask_pb2

from bench.loadgen import Generators, Step
from bench.measure import measure, percentile
from bench.scenarios import REPORTS, Scenario, metadata_for, report_scenarios
from bench.watchers import Watch, Watchers
from report_service.v1 import report_pb2, report_service_pb2
from tests.processes import ServiceProcess, _cpu_seconds, start_service

CONCURRENCY = 16
WATCH = REPORTS + "WatchReport"
CHECK = "/grpc.health.v1.Health/Check"
UPDATED = report_pb2.ReportEvent.TYPE_REPORT_UPDATED
NAMES = ("watch capacity", "watch fan-out")  # what --only matches


@dataclass(frozen=True)
class Size:
    """How big a run of the watch scenarios is: --quick keeps them small."""

    watchers: int
    reports: int  # reports the fan-out watchers watch (and the writer updates)
    rate: float  # fan-out UpdateReport calls per second
    seconds: float  # fan-out writing time
    rounds: int  # capacity rounds (without, with the watchers), interleaved


QUICK = Size(watchers=200, reports=20, rate=100, seconds=1.0, rounds=1)
FULL = Size(watchers=1000, reports=100, rate=100, seconds=10.0, rounds=3)


def _watches(address: str, report_ids: list[str], count: int, first: int = 0) -> list[Watch]:
    """count watches of the reports in turn, each by a principal of its own."""
    watches = []
    for k in range(first, first + count):
        request = report_service_pb2.WatchReportRequest(id=report_ids[k % len(report_ids)])
        metadata = metadata_for(f"user:watcher-{k}")
        watches.append(Watch(address, WATCH, request.SerializeToString(), metadata))
    return watches


# ---------------------------------------------------------------------------
# Idle-watcher capacity
# ---------------------------------------------------------------------------


def run_capacity(
    generators: Generators,
    url: str,
    work: Path,
    watchers: int,
    warmup: float,
    duration: float,
    rounds: int = 1,
) -> dict:
    """Rounds of (no watcher, `watchers` watchers), interleaved so that the machine's noise hits
    both; medians over the rounds. RSS per watcher from the first round (later rounds reuse
    the memory the first one grew)."""
    server = start_service("report-service", url, work / "watch-capacity.log")
    try:
        with server.channel() as channel:
            get = report_scenarios(channel, CONCURRENCY)[0]
        check = Scenario("health Check", "report-service", [[Step(CHECK, b"")]], 0, 2)
        report_ids = [f"team:bench-{k}" for k in range(CONCURRENCY)]
        rows: dict[str, list[dict]] = {}
        figures: dict = {
            "watchers": watchers,
            "rounds": rounds,
            "opened": watchers,
            "ended_early": 0,
        }
        for round_ in range(rounds):
            _measure_unary(generators, server, (check, get), 0, rows, warmup, duration)
            before = server.rss_bytes()
            holder = Watchers(_watches(server.address, report_ids, watchers))
            try:
                during = server.rss_bytes()
                if holder.errors:
                    print(f"  ! watches: {len(holder.errors)} errors, first: {holder.errors[0]}")
                _measure_unary(generators, server, (check, get), watchers, rows, warmup, duration)
            finally:
                held = holder.stop()
            figures["opened"] = min(figures["opened"], holder.opened)
            figures["ended_early"] += held.ended
            if round_ == 0:
                figures.update(
                    open_seconds=holder.open_seconds,
                    rss_before_mib=before / 2**20,
                    rss_with_mib=during / 2**20,
                    rss_per_watcher_kb=(during - before) / max(holder.opened, 1) / 1024,
                )
            print(
                f"  watch capacity round {round_ + 1}: {holder.opened} of {watchers} watchers"
                f" opened in {holder.open_seconds:.1f} s; RSS {before / 2**20:.1f} →"
                f" {during / 2**20:.1f} MiB ({(during - before) / watchers / 1024:.1f} KB each)",
                flush=True,
            )
        for key, measured in rows.items():
            figures[key] = {
                name: statistics.median(row[name] for row in measured)
                for name in ("calls_per_second", "p50_ms", "p99_ms", "cpu_us_per_call")
            } | {
                "calls": sum(r["calls"] for r in measured),
                "errors": sum(r["errors"] for r in measured),
            }
        return figures
    finally:
        server.stop()


def _measure_unary(generators, server, scenarios, watchers, rows, warmup, duration) -> None:
    for scenario in scenarios:
        row = measure(generators, server, scenario, "sqlite", CONCURRENCY, warmup, duration)
        rows.setdefault(f"{scenario.name} {watchers}", []).append(row.as_dict())
        print(
            f"  watch capacity {scenario.name:<13} {watchers:>5} watchers C={CONCURRENCY}"
            f" {row.calls_per_second:6.0f}/s p50 {row.p50_ms:6.2f} ms p99 {row.p99_ms:6.2f} ms"
            f" cpu {row.cpu_us_per_call:5.0f} µs",
            flush=True,
        )


# ---------------------------------------------------------------------------
# Fan-out latency
# ---------------------------------------------------------------------------


def run_fanout(url: str, work: Path, size: Size, processes: int = 2) -> dict:
    servers: list[ServiceProcess] = []
    try:
        for n in range(processes):  # one after the other: the first migrates the database
            servers.append(start_service("report-service", url, work / f"watch-fanout-{n}.log"))
        writer = metadata_for("user:fanout-writer")
        report_ids = [f"team:fanout-{k}" for k in range(size.reports)]
        with servers[0].channel() as channel:
            create = channel.unary_unary(REPORTS + "CreateReport")
            for report_id in report_ids:
                report = report_pb2.Report(id=report_id, type="dashboard", name=report_id)
                request = report_service_pb2.CreateReportRequest(report=report)
                create(request.SerializeToString(), metadata=writer)
        share = size.watchers // processes
        watches = [
            watch
            for n, server in enumerate(servers)
            for watch in _watches(server.address, report_ids, share, first=n * share)
        ]
        holder = Watchers(watches)
        try:
            if holder.errors:
                print(f"  ! watches: {len(holder.errors)} errors, first: {holder.errors[0]}")
            cpu_before = [s.cpu_seconds() for s in servers] + [_cpu_seconds(holder.pid)]
            started = time.monotonic()
            writes = asyncio.run(
                _write([s.address for s in servers], report_ids, writer, size.rate, size.seconds)
            )
            holder.settle()  # the last writes' deliveries
            window = time.monotonic() - started
            cpu = [
                after - before
                for before, after in zip(
                    cpu_before,
                    [s.cpu_seconds() for s in servers] + [_cpu_seconds(holder.pid)],
                    strict=True,
                )
            ]
        finally:
            held = holder.stop()
    finally:
        for server in servers:
            server.stop()
    answered = {f"name {k}": at for k, at in enumerate(writes) if at is not None}
    latencies, after_response = [], []
    for arrived, _, message in held.received:
        event = report_pb2.ReportEvent.FromString(message)
        if event.type == UPDATED:
            latencies.append(arrived - event.create_time.ToNanoseconds() / 1e9)
            if event.report.name in answered:
                after_response.append(arrived - answered[event.report.name])
    per_report = len(watches) / size.reports
    expected = round(len(answered) * per_report)
    figures = {
        "watchers": len(watches),
        "opened": holder.opened,
        "processes": processes,
        "reports": size.reports,
        "rate": size.rate,
        "seconds": size.seconds,
        "writes": len(writes),
        "write_errors": len(writes) - len(answered),
        "deliveries": len(latencies),
        "deliveries_expected": expected,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
        # From the writer's response instead (negative: delivered before the response came).
        "after_response_p50_ms": percentile(after_response, 0.50) * 1000,
        "after_response_p99_ms": percentile(after_response, 0.99) * 1000,
        # CPU seconds over the writes and their deliveries: each service process, then
        # the watchers' process (the client side, for comparison).
        "window_seconds": window,
        "server_cpu_seconds": cpu[:-1],
        "watchers_cpu_seconds": cpu[-1],
        "stream_errors": held.errors,
    }
    print(
        f"  watch fan-out: {holder.opened} watchers on {processes} processes, {len(writes)}"
        f" writes at {size.rate:.0f}/s: {len(latencies)} of {expected} deliveries,"
        f" commit → delivery p50 {figures['p50_ms']:.1f} ms p99 {figures['p99_ms']:.1f} ms"
        f" max {figures['max_ms']:.1f} ms; from the writer's response p50"
        f" {figures['after_response_p50_ms']:.1f} ms p99 {figures['after_response_p99_ms']:.1f} ms;"
        f" CPU s: services {', '.join(f'{c:.1f}' for c in cpu[:-1])}, watchers {cpu[-1]:.1f}"
        f" over {window:.1f} s",
        flush=True,
    )
    return figures


async def _write(
    addresses: list[str], report_ids: list[str], metadata, rate: float, seconds: float
) -> list[float | None]:
    """UpdateReport at `rate` calls/s for `seconds` (open loop: a slow call does not delay the
    next), the k-th on report k and process k, named `name {k}`; when each response arrived
    (time.time()), None for a call that failed."""
    channels = [grpc.aio.insecure_channel(address) for address in addresses]
    updates = [channel.unary_unary(REPORTS + "UpdateReport") for channel in channels]
    mask = field_mask_pb2.FieldMask(paths=["name"])
    errors: list[str] = []

    async def update(k: int) -> float | None:
        report = report_pb2.Report(id=report_ids[k % len(report_ids)], name=f"name {k}")
        request = report_service_pb2.UpdateReportRequest(
            report=report, update_mask=mask, request_id=str(uuid.uuid4())
        )
        try:
            await updates[k % len(updates)](request.SerializeToString(), metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            errors.append(f"{exc.code().name} {exc.details()}")
            return None
        return time.time()

    started = time.perf_counter()
    tasks = []
    for k in range(round(rate * seconds)):
        delay = started + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(update(k)))
    results = await asyncio.gather(*tasks)
    if errors:
        print(f"  ! UpdateReport: {len(errors)} errors, first: {errors[0]}", flush=True)
    for channel in channels:
        await channel.close()
    return list(results)


def run_watch(
    generators: Generators,
    stores,
    work: Path,
    size: Size,
    warmup,
    duration,
    *,
    postgres: bool,
    only: str = "",
) -> dict:
    """Both scenarios (those whose name has `only`); fan-out only with PostgreSQL."""
    results = {}
    if only in NAMES[0]:
        results["capacity"] = run_capacity(
            generators,
            stores.url("sqlite", "watch-capacity"),
            work,
            size.watchers,
            warmup,
            max(duration, 0.6),  # a p99 wants more calls than --quick's window gives
            size.rounds,
        )
    if postgres and only in NAMES[1]:
        results["fanout"] = run_fanout(stores.url("postgres", "watch-fanout"), work, size)
    return results


# ---------------------------------------------------------------------------
# Targets and table
# ---------------------------------------------------------------------------

P99_BOUND = 1.5  # p99 with the watchers open, over p99 without
RSS_BOUND_KB = 50.0
FANOUT_P99_BOUND_MS = 100.0


def targets(results: dict) -> list[dict]:
    """The issue's watch targets, in bench.report's form."""
    found = []
    capacity = results.get("capacity")
    if capacity:
        n = capacity["watchers"]
        for name in ("health Check", "GetReport"):
            value = capacity[f"{name} {n}"]["p99_ms"] / capacity[f"{name} 0"]["p99_ms"]
            found.append(
                {
                    "target": f"{name} p99 with {n:,} idle watchers ≤ {P99_BOUND} × without",
                    "value": value,
                    "bound": P99_BOUND,
                    "met": value <= P99_BOUND and capacity["opened"] == n,
                }
            )
        value = capacity["rss_per_watcher_kb"]
        found.append(
            {
                "target": f"RSS per idle watcher ≤ {RSS_BOUND_KB:.0f} KB ({n:,} watchers)",
                "value": value,
                "bound": RSS_BOUND_KB,
                "met": value <= RSS_BOUND_KB,
            }
        )
    fanout = results.get("fanout")
    if fanout:
        value = fanout["p99_ms"]
        complete = fanout["deliveries"] >= fanout["deliveries_expected"]
        found.append(
            {
                "target": f"fan-out commit → delivery p99 ≤ {FANOUT_P99_BOUND_MS:.0f} ms"
                f" ({fanout['watchers']:,} watchers, 2 processes, PG, {fanout['rate']:.0f} w/s)",
                "value": value,
                "bound": FANOUT_P99_BOUND_MS,
                "met": value <= FANOUT_P99_BOUND_MS and complete,
            }
        )
    return found
