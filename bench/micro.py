"""`python -m bench.micro SCENARIO`: CPU µs per call of the servicer path, and a cProfile of it.

Cheap and precise beside the process bench: the service runs in this process (SQLite, in a
scratch directory), its data is set up through a real channel by the bench's own scenario
set-ups, then the chosen scenario's calls are made one after the other, in this thread,
through the production interceptor's handler (token check, permission, NUL walk, access
log, servicer, response serialisation) -- everything but grpc's transport, which the
baseline measures. Numbers are thread CPU time, so other load on the machine barely moves
them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

from bench.loadgen import FRESH
from bench.scenarios import SETUPS, seed_catalog
from tests.support import serve


class _Handlers:
    """Stands in for grpc.Server while a service's add_servicers registers its handlers."""

    def __init__(self) -> None:
        self.by_method: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers) -> None:
        pass  # the registered handlers below carry the same methods

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        for name, handler in handlers.items():
            self.by_method[f"/{service}/{name}"] = handler

    def lookup(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return self.by_method[details.method]


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


class _Context:
    """What the interceptor and shared.calls ask of a ServicerContext."""

    def __init__(self, metadata) -> None:
        self._metadata = metadata

    def invocation_metadata(self):
        return self._metadata

    def time_remaining(self):
        return None  # no deadline, as the bench's own clients set none

    def peer(self) -> str:
        return "ipv4:127.0.0.1:0"  # the access log's peer: no socket here

    def is_active(self) -> bool:
        return True

    def abort_with_status(self, status):
        raise RuntimeError(f"call failed: {status.code} {status.details}")


def _definition(service: str):
    module = __import__(f"{service.replace('-', '_')}.server", fromlist=["SERVICE"])
    return module.SERVICE


def _measure(definition, scenario, args, settings) -> None:
    """Run the scenario's calls through the production interceptor's handlers, in this thread."""
    from shared.auth import TokenVerifier
    from shared.interceptor import PlatformInterceptor
    from tests.support import TEST_AUTH

    handlers = _Handlers()
    definition.add_servicers(handlers, settings)
    interceptor = PlatformInterceptor(definition.name, TokenVerifier(TEST_AUTH))
    steps = [
        (step, interceptor.intercept_service(handlers.lookup, _Details(step.method)))
        for step in scenario.sequences[0]
    ]

    def one_pass() -> None:
        fresh = str(time.perf_counter_ns()).rjust(32, "0").encode()  # a new idempotency key
        for step, handler in steps:
            request = handler.request_deserializer(step.request.replace(FRESH, fresh))
            response = handler.unary_unary(request, _Context(step.metadata))
            if handler.response_serializer is not None:  # None: the handler answers bytes
                handler.response_serializer(response)

    for _ in range(20):
        one_pass()
    times = []
    profiler = cProfile.Profile() if args.profile else None
    for _ in range(args.calls):
        started = time.thread_time()
        if profiler:
            profiler.enable()
        one_pass()
        if profiler:
            profiler.disable()
        times.append(time.thread_time() - started)
    per_rpc = [t / len(steps) * 1e6 for t in times]
    print(
        f"{scenario.name}: median {statistics.median(per_rpc):.0f} µs CPU per RPC,"
        f" mean {statistics.mean(per_rpc):.0f} µs ({args.calls} passes of"
        f" {len(steps)} RPC{'s' if len(steps) > 1 else ''}; no transport)"
    )
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
        print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.micro")
    parser.add_argument("scenario", help="text in the scenario's name, e.g. 'GetCohortDraft 10'")
    parser.add_argument("--calls", type=int, default=300, help="measured passes")
    parser.add_argument("--profile", action="store_true", help="print the cProfile top functions")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", help="cProfile sort key (tottime, cumtime)")
    args = parser.parse_args()
    logging.getLogger("shared.access").setLevel(logging.INFO)  # formatted, as in production
    logging.getLogger("shared.access").addHandler(logging.NullHandler())
    with tempfile.TemporaryDirectory(prefix="bench-micro-") as scratch:
        work = Path(scratch)
        for service, setup in SETUPS.items():
            url = f"sqlite:///{work}/{service}.db"
            if service == "cohort-service":
                seed_catalog(url, 1000, work)
            definition = _definition(service)
            with serve(definition, url) as running:
                chosen = [s for s in setup(running.channel, 1) if args.scenario in s.name]
                if not chosen:
                    continue
                _measure(definition, chosen[0], args, running.settings)
                return
    print(f"no scenario named like {args.scenario!r}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
