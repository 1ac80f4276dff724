"""Server bootstrap: store, servicers, health, reflection, interceptor, graceful shutdown.

The server model (a thread pool behind grpc's sync server) lives here and nowhere else, so
that changing it touches no servicer.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import peewee
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from playhouse.pool import PooledDatabase

from shared.auth import TokenVerifier
from shared.clock import set_offset as set_clock_offset
from shared.config import ConfigError, Settings
from shared.db import POSTGRES_POOL_SIZE, apply_migrations, open_database
from shared.drain import SHUTDOWN_NOTICE, Drain, HealthServicer, drain_and_stop
from shared.interceptor import PlatformInterceptor
from shared.lanes import Lanes, Limits
from shared.metrics import WorkerWatch, serve_metrics, workers_metrics
from shared.metrics import enable as enable_metrics
from shared.purge import Purge, Purger
from shared.reflection import enable_reflection
from shared.service import ServiceDefinition
from shared.tracing import enable as enable_tracing
from shared.tracing import shutdown as shutdown_tracing
from shared.watch import Feed, Watches

_LOGGER = logging.getLogger(__name__)

# How many calls of each kind a process admits, and why: shared/lanes.py.
LIMITS = Limits(calls=POSTGRES_POOL_SIZE)
# Threads serving the calls lane while no call is blocked (shared.lanes.ElasticPool). The
# servicers are CPU-bound Python, so more only contend for the GIL: bench, SQLite, C=16, 4
# threads against 16 (interleaved runs) served GetCohortDraft 1.4x faster at 30-40% less CPU
# per call, with p99 1.3x p50 instead of 1.7x. Fewer would be cheaper still (1-2 threads:
# 15-30% less CPU per call, docs/performance.md), but a blocked call gets its thread replaced
# only after `slow_call_seconds`, so with one or two threads every blocked call would delay
# the calls behind it by as much.
THREADS = LIMITS.running
MAX_CONCURRENT_RPCS = LIMITS.backstop  # grpc's own limit; each lane refuses well before it
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # larger requests are refused with RESOURCE_EXHAUSTED
WORKER_START_SECONDS = 60  # a --workers process that does not serve by then fails the start


@dataclass(frozen=True)
class RunningServer:
    """A started server: where it listens and the store it serves."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    database: peewee.Database
    purger: Purger  # its run_once purges now (tests; it also runs every --purge-interval)


def open_store(
    definition: ServiceDefinition, settings: Settings, *, migrate: bool = True
) -> peewee.Database:
    """Open the service's database, bind its proxy, and apply pending migrations."""
    database = open_database(settings.database_url)
    definition.database.initialize(database)
    if migrate:
        apply_migrations(database, definition.migrations)
    return database


def close_store(database: peewee.Database) -> None:
    if isinstance(database, PooledDatabase):
        database.close_all()
    else:
        database.close()


def grpc_server(
    executor: futures.ThreadPoolExecutor,
    interceptors: list[grpc.ServerInterceptor],
    *,
    reuse_port: bool = False,
    maximum_concurrent_rpcs: int = MAX_CONCURRENT_RPCS,
) -> grpc.Server:
    """The server model and options every process runs; the bench baseline calls it too."""
    return grpc.server(
        executor,
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ],
        maximum_concurrent_rpcs=maximum_concurrent_rpcs,
    )


def create_server(
    definition: ServiceDefinition,
    settings: Settings,
    lanes: Lanes,
    drain: Drain | None = None,
    watches: Watches | None = None,
) -> tuple[grpc.Server, int, health.HealthServicer, Sequence[Purge]]:
    """A bound, not yet started server with the production interceptor; port 0 picks one;
    and the service's purges (shared.purge), for the caller to run.

    Every call runs on a lane's threads (the interceptor says which); grpc's default pool is
    the calls lane, which no call reaches without passing the interceptor.
    """
    server = grpc_server(
        lanes.calls,
        [
            PlatformInterceptor(
                definition.name,
                TokenVerifier(settings.auth),
                definition.database,
                drain,
                lanes,
                watches,
            )
        ],
        reuse_port=settings.workers > 1,
        maximum_concurrent_rpcs=lanes.limits.backstop,
    )
    purges = definition.add_servicers(server, settings)
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection((*definition.service_names, health.SERVICE_NAME), server)
    address = f"{settings.host}:{settings.port}"
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:  # grpc says no more than "Failed to bind"
        prefix = definition.env_prefix
        raise ConfigError(
            f"cannot listen on {address}: the port is in use or the address is not this "
            f"host's; choose another with --port or {prefix}_PORT (0 picks a free port), "
            f"or --host or {prefix}_HOST"
        ) from None
    return server, port, health_servicer, purges


@contextlib.contextmanager
def run_server(
    definition: ServiceDefinition,
    settings: Settings,
    *,
    migrate: bool = True,
    notice: float = 0.0,
    limits: Limits = LIMITS,
) -> Iterator[RunningServer]:
    """Serve until the block exits; then NOT_SERVING, drain in-flight calls, close the store.

    notice: the least time the drain keeps the listener open (see shared.drain).
    limits: what the process admits at once (shared.lanes); tests lower them.
    """
    set_clock_offset(settings.clock_offset)  # before anything stores a time
    database = open_store(definition, settings, migrate=migrate)
    drain = Drain()
    lanes = Lanes(limits, definition.name, track=drain.track)
    feed = Feed(definition.events) if definition.events is not None else None
    watches = Watches(limits.watches_per_principal, limits.watch_send_seconds, feed)

    def end_streams() -> None:
        lanes.reaper.end_streams()
        watches.end_all()

    try:
        server, port, health_servicer, purges = create_server(
            definition, settings, lanes, drain, watches
        )
        if definition.events is not None:
            purges = [*purges, definition.events.purge_task(settings.event_retention)]
        purger = Purger(database, purges, settings.purge_interval)
        if feed is not None:
            feed.start()
        server.start()
        for name in ("", *definition.service_names):
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        purger.start()
        try:
            yield RunningServer(server, port, health_servicer, database, purger)
        finally:
            purger.stop()
            drain_and_stop(
                server,
                health_servicer,
                drain,
                settings.grace_period,
                notice,
                end_streams=end_streams,
            )
    finally:
        watches.stop()
        if feed is not None:
            feed.stop()
        lanes.shutdown()
        close_store(database)
        set_clock_offset(0.0)


def catch_signals() -> threading.Event:
    """From now on SIGTERM/SIGINT set the returned event (wait_for_signal waits on it): a
    process with something to stop in order catches them before it starts it."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def wait_for_signal(
    stop: threading.Event | None = None, ended: Callable[[], bool] = lambda: False
) -> bool:
    """Return True on the first SIGTERM/SIGINT (or at once if stop, from catch_signals, is
    set already), or False once ended() is true (polled twice a second: a child that died);
    signals are ignored from then on, for the rest of the process.

    The drain that follows is bounded by the grace period (SIGKILL cuts it short). A Python
    handler left in place is reset to the default by the interpreter as it exits, and a
    repeated SIGTERM arriving then killed a process that had drained: status -15, not 0.
    """
    stop = catch_signals() if stop is None else stop
    while not stop.wait(0.5):
        if ended():
            break
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
    return stop.is_set()


def serve(
    definition: ServiceDefinition, settings: Settings, *, announce: Callable[[str], None] = print
) -> int:
    """Run one server process until SIGTERM/SIGINT; exit status 0 after a graceful drain."""
    with contextlib.ExitStack() as stack:
        if settings.tracing:  # here, in the process that serves: a worker enables its own
            enable_tracing(definition.name)
            stack.callback(shutdown_tracing)  # the last spans, flushed after the drain
        if settings.metrics_port is not None:
            if settings.workers > 1:  # a worker: its parent serves /metrics (serve_workers)
                enable_metrics()
            else:
                with _metrics_bind_errors(definition, settings):
                    endpoint = serve_metrics(settings.host, settings.metrics_port)
                stack.callback(endpoint.server_close)
                stack.callback(endpoint.shutdown)
                announce(f"metrics on {settings.host}:{endpoint.server_port}")
        return _serve_calls(definition, settings, announce)


@contextlib.contextmanager
def _metrics_bind_errors(definition: ServiceDefinition, settings: Settings) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        prefix = definition.env_prefix
        raise ConfigError(
            f"cannot serve metrics on {settings.host}:{settings.metrics_port}: {exc.strerror}; "
            f"choose another with --metrics-port or {prefix}_METRICS_PORT (0 picks a free port)"
        ) from None


def _serve_calls(
    definition: ServiceDefinition, settings: Settings, announce: Callable[[str], None]
) -> int:
    with run_server(
        definition, settings, migrate=settings.workers == 1, notice=SHUTDOWN_NOTICE
    ) as running:
        announce(f"listening on {settings.host}:{running.port}")
        wait_for_signal()
        _LOGGER.info("signal received: draining for up to %.1fs", settings.grace_period)
    return 0


def serve_workers(
    definition: ServiceDefinition, settings: Settings, *, announce: Callable[[str], None] = print
) -> int:
    """Run settings.workers processes sharing one port through SO_REUSEPORT.

    Migrations run once, here, before any worker starts. The kernel spreads new
    connections across the workers; each worker drains on SIGTERM like a single server.
    """
    if settings.port == 0:
        raise ValueError("--workers above 1 needs a fixed --port (the workers share it)")
    close_store(open_store(definition, settings))
    with contextlib.ExitStack() as stack:
        watch = None
        if settings.metrics_port is not None:
            # Before the workers start: they find the metrics directory in their environment.
            with _metrics_bind_errors(definition, settings):
                endpoint, watch = stack.enter_context(
                    workers_metrics(settings.host, settings.metrics_port)
                )
            announce(f"metrics on {settings.host}:{endpoint.server_port}")
        return _run_workers(definition, settings, announce, watch)


def _run_workers(
    definition: ServiceDefinition,
    settings: Settings,
    announce: Callable[[str], None],
    watch: WorkerWatch | None,
) -> int:
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    workers = [
        context.Process(target=_worker_main, args=(definition.name, settings, ready), daemon=False)
        for _ in range(settings.workers)
    ]
    for worker in workers:
        worker.start()
    if watch is not None:
        watch.watch(workers)
    # "listening on" promises that calls are accepted: wait until every worker serves.
    for _ in workers:
        started = ready.get(timeout=WORKER_START_SECONDS)
        if isinstance(started, ConfigError):  # e.g. the port is taken: stop the others
            for worker in workers:
                worker.terminate()
                worker.join()
            raise started
    announce(f"listening on {settings.host}:{settings.port}")
    wait_for_signal()
    for worker in workers:
        worker.terminate()  # SIGTERM: each drains its in-flight calls
    for worker in workers:
        worker.join()
    return max((abs(w.exitcode or 0) for w in workers), default=0)


def _worker_main(service_name: str, settings: Settings, ready: Any) -> None:
    import importlib

    from shared.cli import configure_logging  # here: shared.cli imports this module

    configure_logging(settings.log_format)  # a spawned process starts with none
    module = importlib.import_module(f"{service_name.replace('-', '_')}.server")

    def announce(line: str) -> None:
        _LOGGER.info(line)
        ready.put(line)

    try:
        serve(module.SERVICE, settings, announce=announce)
    except ConfigError as exc:
        ready.put(exc)
