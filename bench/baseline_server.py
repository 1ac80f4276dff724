"""The baseline: the services' server model and options with a handler that does nothing.

No interceptor (so no token check), no database: what the platform's gRPC plumbing alone
costs. `python -m bench.baseline_server --port 0` prints `listening on HOST:PORT` like the
services do and stops on SIGTERM. (The server models compared: bench.models.)
"""

from __future__ import annotations

import argparse
from concurrent import futures

import grpc

from shared.server import (
    THREADS,
    grpc_server,
    wait_for_signal,
)

METHOD = "/bench.Baseline/Echo"


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def _handler() -> grpc.GenericRpcHandler:
    # No (de)serializers: the handler gets and returns the raw bytes, as cheap as a handler gets.
    return grpc.method_handlers_generic_handler(
        "bench.Baseline", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    )


def serve_sync(host: str, port: int) -> None:
    executor = futures.ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="rpc")
    server = grpc_server(executor, [])
    server.add_generic_rpc_handlers((_handler(),))
    port = server.add_insecure_port(f"{host}:{port}")
    server.start()
    print(f"listening on {host}:{port}", flush=True)
    wait_for_signal()
    server.stop(1).wait()
    executor.shutdown(wait=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="baseline_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    serve_sync(args.host, args.port)


if __name__ == "__main__":
    main()
