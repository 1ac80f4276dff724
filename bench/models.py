"""`python -m bench.models`: what an idle stream costs under each server model, and whether
1,000 of them slow the unary calls beside them.

For each model of bench.model_server (sync + a thread per stream, grpc.aio, grpc.aio with
the sync handlers on its migration_thread_pool), in a process of its own: health Check and
a GetReport-like read at C=16 (bench.loadgen, a process of its own) with no stream open,
then with `streams` idle server streams held open by a bench.watchers process; RSS per
idle stream is the server's RSS with them open minus its RSS after the first load, divided
by their number. Models are measured one after the other, `--repeat` rounds interleaved.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from grpc_health.v1 import health_pb2

from bench.loadgen import Generators, Step
from bench.measure import measure
from bench.model_server import CHECK, GET, MODELS, REPORTS, WATCH, create_database
from bench.scenarios import Scenario
from bench.watchers import Watch, Watchers
from report_service.v1 import report_service_pb2
from tests.processes import start_module

CONCURRENCY = 16
SCENARIOS = [
    Scenario("health Check", "model", [[Step(CHECK, b"")]], 0, 2),
    Scenario(
        "GetReport-like",
        "model",
        [
            [Step(GET, report_service_pb2.GetReportRequest(id=f"report-{k}").SerializeToString())]
            for k in range(REPORTS)
        ],
        0,
        0,
    ),
]


def run_models(
    generators: Generators,
    work: Path,
    *,
    streams: int,
    warmup: float,
    duration: float,
    repeat: int = 1,
    models: tuple[str, ...] = MODELS,
) -> list[dict]:
    """One row per model: p50/p99 of each scenario with 0 and `streams` streams, RSS."""
    database = work / "models.db"
    if not database.exists():
        create_database(database)
    watch = health_pb2.HealthCheckRequest().SerializeToString()
    samples: dict[str, dict] = {model: {"rss_per_stream": []} for model in models}
    for round_ in range(repeat):
        for model in models:
            server = start_module(
                model,
                "bench.model_server",
                ("--model", model, "--database", str(database)),
                os.environ,
                work / f"model-{model}.log",
            )
            try:
                figures = samples[model]
                _load(generators, server, model, 0, figures, warmup, duration)
                before = server.rss_bytes()
                threads_before = _threads(server.pid)
                holder = Watchers([Watch(server.address, WATCH, watch)] * streams)
                try:
                    during = server.rss_bytes()
                    figures.setdefault("threads", []).append((threads_before, _threads(server.pid)))
                    if holder.opened != streams:
                        raise RuntimeError(
                            f"{model}: {holder.opened} of {streams} streams opened:"
                            f" {holder.errors[:3]}"
                        )
                    _load(generators, server, model, streams, figures, warmup, duration)
                finally:
                    holder.stop()
                figures["rss_per_stream"].append((during - before) / streams)
                figures.setdefault("rss_mib", []).append((before / 2**20, during / 2**20))
                print(
                    f"  model {model:<8} round {round_ + 1}: {streams} idle streams"
                    f" {(during - before) / streams / 1024:5.1f} KB each"
                    f" (RSS {before / 2**20:.1f} → {during / 2**20:.1f} MiB, opened in"
                    f" {holder.open_seconds:.1f} s)",
                    flush=True,
                )
            finally:
                server.stop()
    return [_summary(model, streams, samples[model]) for model in models]


def _load(generators, server, model, streams, figures, warmup, duration) -> None:
    for scenario in SCENARIOS:
        row = measure(generators, server, scenario, model, CONCURRENCY, warmup, duration)
        figures.setdefault((scenario.name, streams), []).append(row)
        print(
            f"  model {model:<8} {scenario.name:<15} {streams:>5} streams C={CONCURRENCY}"
            f" {row.calls_per_second:6.0f}/s p50 {row.p50_ms:6.2f} ms p99 {row.p99_ms:6.2f} ms"
            f" cpu {row.cpu_us_per_call:5.0f} µs",
            flush=True,
        )


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _summary(model: str, streams: int, figures: dict) -> dict:
    summary: dict = {
        "model": model,
        "streams": streams,
        "rss_per_stream_kb": statistics.median(figures["rss_per_stream"]) / 1024,
        "rss_mib": figures["rss_mib"],
        "threads": figures["threads"],
    }
    for scenario in SCENARIOS:
        for count in (0, streams):
            rows = figures[(scenario.name, count)]
            key = f"{scenario.name} {count}"
            summary[key] = {
                "calls_per_second": statistics.median(r.calls_per_second for r in rows),
                "p50_ms": statistics.median(r.p50_ms for r in rows),
                "p99_ms": statistics.median(r.p99_ms for r in rows),
                "cpu_us_per_call": statistics.median(r.cpu_us_per_call for r in rows),
                "errors": sum(r.errors for r in rows),
            }
    return summary


def table(summaries: list[dict]) -> str:
    """The comparison as printed: per model and call, p50, p99 and CPU with 0 and N streams."""
    streams = summaries[0]["streams"]
    header = (
        f"{'model':<9} {'KB/stream':>9}  {'call':<15} {'calls/s':>13} {'p50 ms':>13}"
        f" {'p99 ms':>13} {'p99 ×':>5} {'CPU µs/call':>11}"
    )
    lines = [
        f"server models: 0 → {streams:,} idle streams, unary calls at C={CONCURRENCY} (medians)",
        header,
        "-" * len(header),
    ]
    for summary in summaries:
        for scenario in SCENARIOS:
            idle, busy = summary[f"{scenario.name} 0"], summary[f"{scenario.name} {streams}"]
            ratio = busy["p99_ms"] / idle["p99_ms"] if idle["p99_ms"] else float("nan")
            lines.append(
                f"{summary['model']:<9} {summary['rss_per_stream_kb']:9.1f}  {scenario.name:<15}"
                f" {idle['calls_per_second']:5.0f} → {busy['calls_per_second']:5.0f}"
                f" {idle['p50_ms']:5.2f} → {busy['p50_ms']:5.2f}"
                f" {idle['p99_ms']:5.1f} → {busy['p99_ms']:5.1f} {ratio:5.2f}"
                f" {idle['cpu_us_per_call']:4.0f} → {busy['cpu_us_per_call']:4.0f}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.models", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured window per point")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, models interleaved")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    generators = Generators(1)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-models-") as scratch:
            summaries = run_models(
                generators,
                Path(scratch),
                streams=args.streams,
                warmup=0.5,
                duration=args.seconds,
                repeat=args.repeat,
                models=tuple(args.models.split(",")),
            )
    finally:
        generators.close()
    print()
    print(table(summaries))


if __name__ == "__main__":
    main()
