"""Prometheus metrics (--metrics-port): what a process records, and the /metrics endpoint.

Off unless the process enables them: every recording site asks `active()` first, so that a
service without --metrics-port pays one function call per RPC and nothing else. RPC metrics
follow go-grpc-prometheus (`grpc_server_started_total`, `grpc_server_handled_total`,
`grpc_server_handling_seconds`), so that the dashboards and alerts written for it work here.

With --workers N, prometheus_client's multiprocess mode: every worker writes its values to
files in PROMETHEUS_MULTIPROC_DIR, a directory the parent creates (before the workers start:
prometheus_client reads the variable when it is first imported) and removes at exit; the
parent serves /metrics, adding up the workers' files, and marks a worker that exited dead so
that its gauges drop out.
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from http.server import HTTPServer
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

if TYPE_CHECKING:  # prometheus_client is imported when metrics are enabled, not before
    from prometheus_client import CollectorRegistry

# grpc's handler type is generic in the typing stubs only.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
# go-grpc-prometheus's default buckets (seconds), which its dashboards assume.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_METHOD_LABELS = ("grpc_service", "grpc_method", "grpc_type")

_ACTIVE: Metrics | None = None


def active() -> Metrics | None:
    """The process's metrics, or None when --metrics-port is not set."""
    return _ACTIVE


def rpc_type(handler: Handler) -> str:
    """go-grpc-prometheus's grpc_type of a method, from its handler as the service declares it."""
    if handler.request_streaming:
        return "bidi_stream" if handler.response_streaming else "client_stream"
    return "server_stream" if handler.response_streaming else "unary"


class Metrics:
    """The metrics one process records (registry None: multiprocess files only)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.started = Counter(
            "grpc_server_started",
            "RPCs started on the server.",
            _METHOD_LABELS,
            registry=registry,
        )
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, whatever their status code.",
            (*_METHOD_LABELS, "grpc_code"),
            registry=registry,
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Seconds from the start of an RPC's handling to its end.",
            _METHOD_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "grpc_server_in_flight",
            "RPCs being handled now.",
            _METHOD_LABELS,
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.lane_in_use = Gauge(
            "grpc_server_lane_in_use",
            "Calls admitted to each lane and not yet ended (shared/lanes.py).",
            ("lane",),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.lane_refusals = Counter(
            "grpc_server_lane_refusals",
            "Calls refused before any handler ran: their lane was full (RESOURCE_EXHAUSTED), "
            "or a stream opened while the server drains (UNAVAILABLE, reason SHUTTING_DOWN).",
            ("lane", "reason"),
            registry=registry,
        )
        self.watches_open = Gauge(
            "watch_streams_open",
            "Watch streams open now (shared/watch.py).",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.watch_events = Counter(
            "watch_events_delivered",
            "Events sent on watch streams (SNAPSHOT and opening messages included).",
            registry=registry,
        )
        self.watches_ended = Counter(
            "watch_streams_ended",
            "Watch streams ended, by why: CLIENT_LEFT, ENDED (OK), SHUTTING_DOWN, "
            "WATCHER_TOO_SLOW, TOKEN_EXPIRED, or another error's reason.",
            ("reason",),
            registry=registry,
        )
        self.pool_in_use = Gauge(
            "db_pool_connections_in_use",
            "PostgreSQL connections checked out of the pool.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.pool_waits = Counter(
            "db_pool_waits",
            "Connection checkouts that found every pooled connection in use and waited.",
            registry=registry,
        )
        self.transaction_retries = Counter(
            "db_transaction_retries",
            "Call transactions run again after contention (serialization, deadlock, lock).",
            registry=registry,
        )
        self.contention_aborts = Counter(
            "db_transaction_contention_aborts",
            "Calls that failed on contention with no retry left (attempts or deadline).",
            registry=registry,
        )
        self.idempotency_replays = Counter(
            "idempotency_replays",
            "Calls answered with the stored response of an earlier call with the same key.",
            registry=registry,
        )
        self._labels: dict[
            tuple[str, str], tuple[Any, Any, Any, Callable[[grpc.StatusCode], Any]]
        ] = {}

    # ------------------------------------------------------------------ RPCs

    def observe(self, method: str, kind: str, handler: Handler) -> Handler:
        """handler, recording its start, end, duration and the status code the client gets."""
        started, in_flight, seconds, handled = self._children(method, kind)
        _, behavior = behavior_of(handler)

        def finish(begun: float, code: grpc.StatusCode) -> None:
            seconds.observe(time.perf_counter() - begun)
            in_flight.dec()
            handled(code).inc()

        if handler.response_streaming:

            def recorded(request: Any, context: Any) -> Any:
                started.inc()
                in_flight.inc()
                begun = time.perf_counter()
                yield from stream_to_code(
                    lambda: behavior(request, context), context, lambda code: finish(begun, code)
                )

        else:

            def recorded(request: Any, context: Any) -> Any:
                started.inc()
                in_flight.inc()
                begun = time.perf_counter()
                return run_to_code(
                    lambda: behavior(request, context), context, lambda code: finish(begun, code)
                )

        return with_behavior(handler, recorded)

    def _children(
        self, method: str, kind: str
    ) -> tuple[Any, Any, Any, Callable[[grpc.StatusCode], Any]]:
        """The label children of one method, looked up once: labels() costs a lock and a dict."""
        found = self._labels.get((method, kind))
        if found is None:
            service, _, name = method.lstrip("/").rpartition("/")
            labels = (service, name, kind)
            codes = {
                code: self.handled.labels(*labels, code.name)
                for code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT)
            }

            def handled(code: grpc.StatusCode) -> Any:
                child = codes.get(code)
                if child is None:
                    child = codes[code] = self.handled.labels(*labels, code.name)
                return child

            found = (
                self.started.labels(*labels),
                self.in_flight.labels(*labels),
                self.handling_seconds.labels(*labels),
                handled,
            )
            self._labels[(method, kind)] = found
        return found


def run_to_code(
    call: Callable[[], Any],
    context: Any,
    ended: Callable[[grpc.StatusCode], None],
    around: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> Any:
    """call()'s result (inside around()); then ended(the code the client gets), however it
    ended. The one account of a handler's code, for metrics and traces alike."""
    code = grpc.StatusCode.OK
    try:
        with around():
            response = call()
    except BaseException:
        code = failed_code(context)
        raise
    else:
        code = context.code() or grpc.StatusCode.OK
    finally:
        ended(code)
    return response


def stream_to_code(
    stream: Callable[[], Iterable[Any]],
    context: Any,
    ended: Callable[[grpc.StatusCode], None],
    around: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> Iterator[Any]:
    """The responses of stream(); then ended(the code the client gets), however it ended.

    Each step of the handler (starting it, each next response) runs inside around(), and
    nothing else does: between responses the thread is grpc's.
    """
    code = grpc.StatusCode.OK
    try:
        with around():
            responses = iter(stream())
        while True:
            with around():
                response = next(responses, _END)
            if response is _END:
                break
            yield response
    except GeneratorExit:  # the client left: grpc closes the stream
        code = grpc.StatusCode.CANCELLED
        raise
    except BaseException:
        code = failed_code(context)
        raise
    else:
        code = ended_code(context)
    finally:
        ended(code)


_END = object()  # what next() returns for a stream that has ended


def failed_code(context: Any) -> grpc.StatusCode:
    """The code of a handler that raised: what it aborted with, else what grpc will send."""
    code: grpc.StatusCode | None = context.code()
    if code is not None:
        return code
    # No code set: a request stream ended by a cancel (the client's, or the idle reaper's),
    # else an unexpected exception, which grpc answers UNKNOWN.
    return grpc.StatusCode.CANCELLED if not context.is_active() else grpc.StatusCode.UNKNOWN


def ended_code(context: Any) -> grpc.StatusCode:
    """The code of a handler that returned: what it set, else OK — or CANCELLED for a
    response stream that ended because its client left (health Watch ends its stream then)."""
    code: grpc.StatusCode | None = context.code()
    if code is not None:
        return code
    return grpc.StatusCode.OK if context.is_active() else grpc.StatusCode.CANCELLED


def behavior_of(handler: Handler) -> tuple[str, Callable[..., Any]]:
    for field in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
        behavior = getattr(handler, field)
        if behavior is not None:
            return field, behavior
    raise ValueError("a method handler without a behavior")


def with_behavior(handler: Handler, behavior: Callable[..., Any]) -> Handler:
    """handler with behavior in place of its own, run on the same lane (shared.lanes)."""
    field, own = behavior_of(handler)
    pool = getattr(own, "experimental_thread_pool", None)
    if pool is not None:  # the lane grpc runs the call on
        behavior.experimental_thread_pool = pool  # type: ignore[attr-defined]
    replaced: Handler = handler._replace(**{field: behavior})  # type: ignore[attr-defined]
    return replaced


# ---------------------------------------------------------------------------
# Enabling, and the endpoint
# ---------------------------------------------------------------------------


def enable(registry: CollectorRegistry | None = None) -> Metrics:
    """Start recording in this process (once); registry None: a --workers worker's files."""
    global _ACTIVE
    if _ACTIVE is None:
        from prometheus_client import disable_created_metrics

        disable_created_metrics()  # type: ignore[no-untyped-call]  # `*_created` series: noise beside go-grpc-prometheus's
        _ACTIVE = Metrics(registry)
    return _ACTIVE


@contextlib.contextmanager
def recording(registry: CollectorRegistry) -> Iterator[Metrics]:
    """Metrics recorded into registry for the block only (servers started in it); then off."""
    global _ACTIVE
    previous, _ACTIVE = _ACTIVE, Metrics(registry)
    try:
        yield _ACTIVE
    finally:
        _ACTIVE = previous


def serve_metrics(host: str, port: int) -> HTTPServer:
    """Record in this process and serve them on host:port (0 picks one); the HTTP server."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.process_collector import ProcessCollector

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    enable(registry)
    server, _ = start_http_server(port, addr=host, registry=registry)
    return server


@contextlib.contextmanager
def workers_metrics(host: str, port: int) -> Iterator[tuple[HTTPServer, WorkerWatch]]:
    """The parent's side of --workers: the shared directory, and /metrics over every worker.

    Must be entered before the workers start: they find the directory in their environment.
    """
    directory = tempfile.mkdtemp(prefix="metrics-")
    # The workers' only way to learn the directory: prometheus_client reads the variable
    # itself when a spawned worker imports it.
    os.environ[MULTIPROCESS_DIRECTORY] = directory
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    try:
        server, _ = start_http_server(port, addr=host, registry=registry)
    except OSError:
        os.environ.pop(MULTIPROCESS_DIRECTORY, None)
        shutil.rmtree(directory, ignore_errors=True)
        raise
    watch = WorkerWatch(directory)
    try:
        yield server, watch
    finally:
        watch.stop()
        server.shutdown()
        server.server_close()
        os.environ.pop(MULTIPROCESS_DIRECTORY, None)
        shutil.rmtree(directory, ignore_errors=True)


class WorkerWatch:
    """Marks each worker dead the moment it exits, so that its live gauges stop counting."""

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._processes: list[BaseProcess] = []
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, processes: Sequence[BaseProcess]) -> None:
        self._processes = list(processes)
        self._thread = threading.Thread(target=self._run, name="metrics-workers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
        for process in self._processes:
            self._mark_dead(process)

    def _run(self) -> None:
        alive = {process.sentinel: process for process in self._processes}
        while alive and not self._stopped.is_set():
            for sentinel in multiprocessing.connection.wait(list(alive), timeout=0.5):
                self._mark_dead(alive.pop(sentinel))  # type: ignore[arg-type]  # an int here

    def _mark_dead(self, process: BaseProcess) -> None:
        from prometheus_client import multiprocess

        if process.pid is not None:
            multiprocess.mark_process_dead(process.pid, self._directory)  # type: ignore[no-untyped-call]
