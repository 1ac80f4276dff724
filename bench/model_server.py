"""One server process of a server model, for `bench.models`: health Check, a GetReport-like
read and an idle server stream, with nothing else (no interceptor, no auth).

`python -m bench.model_server --model MODEL --database PATH` prints `listening on HOST:PORT`
like the services and stops on SIGTERM. The models:

- sync: grpc's sync server, as the services run it: unary calls on shared.lanes' ElasticPool
  (4 threads, more only when calls block), health Check on a lane of its own, and each
  stream holding one thread of a dedicated lane for its whole life (the `watches` lane of the
  watch design) — the stream's thread sleeps on a threading.Event.
- aio: grpc.aio with async handlers; the store read runs on a bounded executor of 4 threads
  (run_in_executor), a stream is a coroutine waiting on an asyncio.Event.
- aio-pool: grpc.aio whose migration_thread_pool (4 threads) runs the unary handlers
  unchanged (the services' sync servicers as they are), the stream an async handler: the
  smallest move to grpc.aio.

The read is what GetReport does at its core — one row by primary key from SQLite, its JSON
definition into a Struct, a Report message — so that a model's cost per call is measured
against a handler of the services' weight, not an echo.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

from report_service.v1 import report_pb2, report_service_pb2
from shared.lanes import ElasticPool, Lane, Limits
from shared.server import grpc_server, wait_for_signal

SERVICE = "bench.Models"
GET = f"/{SERVICE}/GetReport"
WATCH = f"/{SERVICE}/Watch"
CHECK = "/grpc.health.v1.Health/Check"
MODELS = ("sync", "aio", "aio-pool")
STORE_THREADS = 4  # the calls lane's running threads (shared.lanes.Limits.running)
WATCH_LANE = 4096  # threads of the sync model's streams lane: above any count measured
REPORTS = 64


def create_database(path: Path) -> None:
    """The rows the GetReport-like handler reads: report-i for i < REPORTS."""
    defn = {"visuals": [{"id": f"v{i}", "kind": "bar", "x": i} for i in range(5)]}
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE report (id TEXT PRIMARY KEY, name TEXT, defn TEXT)")
        connection.executemany(
            "INSERT INTO report VALUES (?, ?, ?)",
            [(f"report-{i}", f"Report {i}", json.dumps(defn)) for i in range(REPORTS)],
        )


class Store:
    """One SQLite connection per thread, as peewee keeps them."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._local = threading.local()

    def get(self, request: report_service_pb2.GetReportRequest) -> report_pb2.Report:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = sqlite3.connect(self._path)
        row = connection.execute(
            "SELECT id, name, defn FROM report WHERE id = ?", (request.id,)
        ).fetchone()
        report = report_pb2.Report(id=row[0], type="dashboard", name=row[1])
        report.defn.update(json.loads(row[2]))
        return report


SERVING = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
FIRST = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def _handlers(check, get, watch, *, pools=None) -> list[grpc.GenericRpcHandler]:
    if pools is not None:  # grpc's sync server runs a behavior on the pool it names
        check.experimental_thread_pool = pools["health"]
        watch.experimental_thread_pool = pools["watches"]
    health = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                check,
                request_deserializer=health_pb2.HealthCheckRequest.FromString,
                response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
            )
        },
    )
    models = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "GetReport": grpc.unary_unary_rpc_method_handler(
                get,
                request_deserializer=report_service_pb2.GetReportRequest.FromString,
                response_serializer=report_pb2.Report.SerializeToString,
            ),
            "Watch": grpc.unary_stream_rpc_method_handler(
                watch,
                request_deserializer=health_pb2.HealthCheckRequest.FromString,
                response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
            ),
        },
    )
    return [health, models]


def serve_sync(store: Store, host: str) -> None:
    limits = Limits()
    calls = ElasticPool("rpc", limits.running, limits.calls, limits.slow_call_seconds)
    pools = {"health": Lane("health", limits.health_threads), "watches": Lane("watch", WATCH_LANE)}

    def check(request, context):
        return SERVING

    def get(request, context):
        return store.get(request)

    def watch(request, context) -> Iterator[health_pb2.HealthCheckResponse]:
        ended = threading.Event()
        context.add_callback(ended.set)  # the client left: free the thread
        yield FIRST
        ended.wait()

    server = grpc_server(calls, [], maximum_concurrent_rpcs=WATCH_LANE + limits.backstop)
    server.add_generic_rpc_handlers(_handlers(check, get, watch, pools=pools))
    port = server.add_insecure_port(f"{host}:0")
    server.start()
    print(f"listening on {host}:{port}", flush=True)
    wait_for_signal()
    server.stop(0).wait()
    for pool in (calls, *pools.values()):
        pool.shutdown(wait=False)


async def serve_aio(store: Store, host: str, model: str, stop: threading.Event) -> None:
    pool = futures.ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="store")

    async def check(request, context):
        return SERVING

    async def get(request, context):
        return await asyncio.get_running_loop().run_in_executor(pool, store.get, request)

    def get_on_pool(request, context):  # aio-pool: a sync handler, run on the migration pool
        return store.get(request)

    async def watch(request, context) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        yield FIRST
        await asyncio.Event().wait()  # cancelled when the client leaves

    limits = Limits()
    server = grpc.aio.server(
        migration_thread_pool=pool if model == "aio-pool" else None,
        maximum_concurrent_rpcs=WATCH_LANE + limits.backstop,
    )
    server.add_generic_rpc_handlers(
        _handlers(check, get_on_pool if model == "aio-pool" else get, watch)
    )
    port = server.add_insecure_port(f"{host}:0")
    await server.start()
    print(f"listening on {host}:{port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    await server.stop(0)
    pool.shutdown(wait=False)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.model_server")
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    store = Store(args.database)
    if args.model == "sync":
        serve_sync(store, args.host)
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    asyncio.run(serve_aio(store, args.host, args.model, stop))


if __name__ == "__main__":
    main()
