"""`python -m bench.ab SCENARIO CHECKOUT...`: one scenario on services from several checkouts,
measured in alternation in the same minutes.

For before/after comparisons on a shared machine: each checkout's service process (SQLite) is
started once from its own directory, and each round measures the baseline echo and then every
checkout (in alternating order), so that the load of the machine falls alike on all of them.
Prints each round and the medians: calls/s as a multiple of the baseline of the same round,
server CPU µs per call, calls/s and p50.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from bench.loadgen import Generators
from bench.measure import measure
from bench.scenarios import SETUPS, baseline, seed_catalog
from tests.processes import start_module, start_service


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab")
    parser.add_argument("scenario", help="text at the start of the scenario's name")
    parser.add_argument("checkouts", nargs="+", type=Path, help="repository directories")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=2.0, help="measured window")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    generators = Generators(1)
    base = start_module("baseline", "bench.baseline_server", (), os.environ, work / "base.log")
    servers, scenarios = {}, {}
    try:
        with base.channel() as channel:
            echo = baseline(channel)
        for index, checkout in enumerate(args.checkouts):
            os.chdir(checkout.resolve())  # `python -m` imports the service from its directory
            for service, setup in SETUPS.items():
                url = f"sqlite:///{work}/{index}-{service}.db"
                if service == "cohort-service":
                    seed_catalog(url, 1000, work)
                server = start_service(service, url, work / f"{index}-{service}.log")
                with server.channel() as channel:
                    found = [
                        s
                        for s in setup(channel, args.concurrency)
                        if s.name.startswith(args.scenario)
                    ]
                if found:
                    servers[checkout], scenarios[checkout] = server, found[0]
                    break
                server.stop()
            else:
                parser.error(f"no scenario named like {args.scenario!r}")
        rows: dict[Path, list[tuple[float, float, float, float]]] = {c: [] for c in servers}
        for number in range(args.rounds):
            echoed = measure(generators, base, echo, "sqlite", args.concurrency, 0.3, args.seconds)
            order = args.checkouts if number % 2 == 0 else args.checkouts[::-1]
            for checkout in order:
                row = measure(
                    generators, servers[checkout], scenarios[checkout], "sqlite",
                    args.concurrency, 0.3, args.seconds,
                )  # fmt: skip
                ratio = row.calls_per_second / echoed.calls_per_second
                rows[checkout].append(
                    (ratio, row.cpu_us_per_call, row.calls_per_second, row.p50_ms)
                )
                print(
                    f"{number} {checkout}: × {ratio:.2f}, cpu {row.cpu_us_per_call:.0f} µs,"
                    f" {row.calls_per_second:.0f}/s, p50 {row.p50_ms:.1f} ms"
                    f" (baseline {echoed.calls_per_second:.0f}/s)",
                    flush=True,
                )
        for checkout, measured in rows.items():
            ratio, cpu, calls, p50 = (
                statistics.median(column) for column in zip(*measured, strict=True)
            )
            print(
                f"median {checkout}: × {ratio:.2f}, cpu {cpu:.0f} µs, {calls:.0f}/s,"
                f" p50 {p50:.1f} ms"
            )
    finally:
        for server in servers.values():
            server.stop()
        base.stop()
        generators.close()


if __name__ == "__main__":
    main()
