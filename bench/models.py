"""`python -m bench.models`: the sync server model against grpc.aio, on the baseline handler.

Both run the same sync handler on the same 16-thread pool (grpc.aio through its
migration_thread_pool, which is how the services' sync servicers would run under it), so
the difference is the server's own machinery.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench.loadgen import Generators
from bench.measure import measure
from bench.scenarios import baseline
from tests.processes import start_module


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.models")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    generators = Generators(1)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-models-") as scratch:
            servers = {
                model: start_module(
                    model,
                    "bench.baseline_server",
                    ("--model", model),
                    os.environ,
                    Path(scratch) / f"{model}.log",
                )
                for model in ("sync", "aio")
            }
            try:
                for concurrency in (int(c) for c in args.concurrency.split(",")):
                    for _ in range(args.repeat):  # interleaved, so that noise hits both
                        for model, server in servers.items():
                            with server.channel() as channel:
                                echo = baseline(channel)
                            row = measure(
                                generators, server, echo, model, concurrency, 0.5, args.seconds
                            )
                            print(
                                f"{model:<5} C={concurrency:<3} {row.calls_per_second:7.0f}/s"
                                f" p50 {row.p50_ms:6.2f} ms p99 {row.p99_ms:6.2f} ms"
                                f" cpu {row.cpu_us_per_call:5.0f} µs/call",
                                flush=True,
                            )
            finally:
                for server in servers.values():
                    server.stop()
    finally:
        generators.close()


if __name__ == "__main__":
    main()
