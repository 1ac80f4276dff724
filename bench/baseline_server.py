"""The baseline: the services' server model and options with a handler that does nothing.

No interceptor (so no token check), no database: what the platform's gRPC plumbing alone
costs. `python -m bench.baseline_server --port 0` prints `listening on HOST:PORT` like the
services do and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import threading
from concurrent import futures

import grpc

from shared.server import THREADS, grpc_server

METHOD = "/bench.Baseline/Echo"


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def main() -> None:
    parser = argparse.ArgumentParser(prog="baseline_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    executor = futures.ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="rpc")
    server = grpc_server(executor, [])
    # No (de)serializers: the handler gets and returns the raw bytes, as cheap as a handler gets.
    handler = grpc.method_handlers_generic_handler(
        "bench.Baseline", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    server.start()
    print(f"listening on {args.host}:{port}", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    server.stop(1).wait()
    executor.shutdown(wait=True)


if __name__ == "__main__":
    main()
