"""One measurement: drive a scenario at a concurrency, read the server's CPU around the window."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

from bench.loadgen import Generators, Load
from bench.scenarios import Scenario
from tests.processes import ServiceProcess


@dataclass(frozen=True)
class Row:
    database: str
    scenario: str
    concurrency: int
    calls: int
    calls_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_call: float  # server process user+system CPU in the window / calls
    errors: int
    step_p50_ms: list[float]
    request_bytes: int
    response_bytes: int

    def as_dict(self) -> dict:
        return asdict(self)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def measure(
    generators: Generators,
    server: ServiceProcess,
    scenario: Scenario,
    database: str,
    concurrency: int,
    warmup: float,
    duration: float,
) -> Row:
    cpu: list[float] = []
    result = generators.run(
        Load(server.address, scenario.sequences, concurrency, warmup, duration),
        on_start=lambda: cpu.append(server.cpu_seconds()),
        on_end=lambda: cpu.append(server.cpu_seconds()),
    )
    calls = len(result.latencies)
    if result.errors:
        print(
            f"  ! {scenario.name} C={concurrency}: {len(result.errors)} errors, first: "
            f"{result.errors[0]}",
            flush=True,
        )
    return Row(
        database=database,
        scenario=scenario.name,
        concurrency=concurrency,
        calls=calls,
        calls_per_second=calls / result.elapsed if result.elapsed else 0.0,
        p50_ms=percentile(result.latencies, 0.50) * 1000,
        p99_ms=percentile(result.latencies, 0.99) * 1000,
        cpu_us_per_call=(cpu[1] - cpu[0]) / calls * 1e6 if calls else float("nan"),
        errors=len(result.errors),
        step_p50_ms=[statistics.median(result.by_step[k]) * 1000 for k in sorted(result.by_step)],
        request_bytes=scenario.request_bytes,
        response_bytes=scenario.response_bytes,
    )
