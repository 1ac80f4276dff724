"""Admission lanes: which threads run a call, and which calls are refused at once, never queued.

grpc's sync server runs each call on a pool thread, and the call holds that thread as long as
it lasts: a reflection stream as long as its client keeps it open, a unary call while it waits
on a row lock or a driver hook — and, before any handler code runs, while grpc waits for a
request message that a client may never send. Four idle reflection streams once took all four
threads of the one pool, and health checks and every other call queued behind them until
their deadlines (issue 10). So each call is sorted when it arrives (by the interceptor, on
grpc's one polling thread) into a lane of its own, and none queues a call for long:

- health: health Check only, on threads nothing else uses.
- streams: reflection (v1 and v1alpha) and health Watch. The sync server reads a request
  stream only by blocking a thread, so each open stream has one; at most `streams` are open
  per process, idle ones are cancelled (below), and the drain does not wait for them.
- calls: the services' unary RPCs, at most `calls` in flight (running or waiting at most
  `slow_call_seconds` for a thread, below), so that calls waiting on a lock hold threads, not
  the service. `calls` equals the PostgreSQL pool, so an admitted call never waits for a
  connection.
- watches: the services' watch streams (shared.watch), at most `watches` open per process
  (and `watches_per_principal` of one principal); each sleeps on its thread while caught up,
  and the drain ends them at once rather than waiting for them.
- refusals: a lane that is full answers RESOURCE_EXHAUSTED (reason `TOO_MANY_CALLS`,
  `TOO_MANY_STREAMS` or `TOO_MANY_WATCHES`) at once. The refusal reads no request, so it
  never waits for a client, and runs on two threads of its own.

Threads are not free: threads that run Python at once contend for the GIL (docs/performance.md,
Performance: 4 threads served 1.4 x the calls of 16 at 30-40 % less CPU per call), and most
of a call's Python is grpc's own machinery around the handler, before and after it. So the
calls lane is an `ElasticPool`: `running` threads (4, as before) take the calls in turn, and
only when the oldest waiting call has waited `slow_call_seconds` — the threads are taken to be
blocked (a row lock, a driver, a slow statement) — is one more thread started, up to `calls`.
Under CPU load the process runs 4 calls at a time as before; blocked calls cannot starve the
rest, and a call waits at most `slow_call_seconds` for a thread. (A gate around the handler
alone, tried first, left grpc's machinery running on up to `calls` threads: GetReport cost
about twice the CPU per call in the bench.) Threads started so are stopped after a second
without work.

Every handler reads its request messages itself (`IdleReaper`): a call waiting for a message
from its client longer than its limit is cancelled (the client sees CANCELLED): a reflection
stream after `stream_idle_seconds` without a request; a unary call or Watch whose request has
not arrived after `request_seconds` (real clients send it with the call; health Check gets
`health_request_seconds`, so that idle Checks cannot hold the health lane for long).

What remains of thread-per-call: a client that opens more idle calls than a lane holds, and
keeps opening them, has the excess refused (fast, with RESOURCE_EXHAUSTED) rather than served;
a server model that waits for clients without a thread (issue 11) would lift that. Not done:
limits per peer. A peer is a connection (address and port) and an attacker opens as many as
it likes; limits per process are what bound the threads and connections.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from grpc_status import rpc_status

from shared.errors import (
    InvalidArgument,
    ResourceExhausted,
    ServiceError,
    to_status,
)
from shared.metrics import active as active_metrics

if TYPE_CHECKING:
    from prometheus_client import Gauge

_LOGGER = logging.getLogger(__name__)

# grpc's classes are generic in its stubs only.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Future = futures.Future[Any]


@dataclass(frozen=True)
class Limits:
    """Per process; docs/operations.md "Limits per process" lists them for operators."""

    calls: int = 32  # unary RPCs in flight (threads of the calls lane); shared.db's pool size
    running: int = 4  # threads of the calls lane while no call waits long (GIL contention)
    slow_call_seconds: float = 0.05  # a call waiting this long for a thread gets a new one
    streams: int = 128  # open reflection and health Watch streams (one thread each)
    health_threads: int = 64  # health Checks at once (threads start when first needed)
    stream_idle_seconds: float = 60.0  # a reflection stream with no request for this long ends
    request_seconds: float = 5.0  # the longest wait for a unary call's request message
    health_request_seconds: float = 1.0  # the same for health Check
    watches: int = 2000  # open watch streams (one sleeping thread each; shared.watch)
    watches_per_principal: int = 100  # open watch streams of one principal
    watch_send_seconds: float = 10.0  # a watch whose client reads nothing this long is cut off

    @property
    def backstop(self) -> int:
        """grpc's own maximum_concurrent_rpcs: above every lane, so that it never refuses first.

        Refusals are not counted by a lane; they take microseconds and never wait.
        """
        return self.calls + self.streams + self.health_threads + self.watches + 1024


# ---------------------------------------------------------------------------
# Lanes
# ---------------------------------------------------------------------------


class Lane(futures.ThreadPoolExecutor):
    """A pool with a thread for every call it admits: a call admitted never queues.

    grpc submits a call to the pool named by its behavior's `experimental_thread_pool`;
    the count follows the task's future, which completes whether the handler ran or the
    client left first, so it cannot leak. Admission (`admits`) is asked on grpc's polling
    thread, the only one that submits, so a count seen there is not overtaken.
    """

    def __init__(
        self,
        name: str,
        threads: int,
        *,
        bounded: bool = True,
        track: Callable[[Future], None] | None = None,
    ) -> None:
        super().__init__(max_workers=threads, thread_name_prefix=name)
        self.capacity = threads if bounded else None
        self._track = track
        self._in_flight = 0
        self._count_lock = threading.Lock()
        self._in_use_gauge: Gauge | None = None  # set by `measure` when metrics are on

    def measure(self, lane: str) -> None:
        """Report the calls in flight as grpc_server_lane_in_use{lane=...}."""
        metrics = active_metrics()
        if metrics is not None:
            self._in_use_gauge = metrics.lane_in_use.labels(lane)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def admits(self) -> bool:
        return self.capacity is None or self._in_flight < self.capacity

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        with self._count_lock:
            self._in_flight += 1
            if self._in_use_gauge is not None:
                self._in_use_gauge.set(self._in_flight)
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        if self._track is not None:
            self._track(future)
        return future

    def _done(self, _future: Future) -> None:
        with self._count_lock:
            self._in_flight -= 1
            if self._in_use_gauge is not None:
                self._in_use_gauge.set(self._in_flight)


class ElasticPool(Lane):
    """A Lane of `core` threads that adds one whenever the oldest waiting call has waited
    `grow_after` seconds, up to one thread per admitted call; added threads leave when idle.

    Subclasses ThreadPoolExecutor only because grpc takes a behavior's pool only if it is one;
    none of its machinery is used.
    """

    _IDLE_EXIT_SECONDS = 1.0

    def __init__(
        self,
        name: str,
        core: int,
        limit: int,
        grow_after: float,
        *,
        track: Callable[[Future], None] | None = None,
    ) -> None:
        super().__init__(name, limit, track=track)
        self._name = name
        self._limit = limit
        self._core = core
        self._grow_after = grow_after
        self._work: collections.deque[Any] = collections.deque()  # (queued at, future, fn, args)
        self._changed = threading.Condition()
        self._workers: set[threading.Thread] = set()
        self._idle = 0
        self._stopping = False
        self._serial = itertools.count()
        self._grower = threading.Thread(target=self._grow, name=f"{name}-grower", daemon=True)
        self._grower.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = futures.Future()
        with self._count_lock:
            self._in_flight += 1
            if self._in_use_gauge is not None:
                self._in_use_gauge.set(self._in_flight)
        future.add_done_callback(self._done)
        if self._track is not None:
            self._track(future)
        with self._changed:
            if self._stopping:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._work.append((time.monotonic(), future, fn, args, kwargs))
            if self._idle:
                self._changed.notify_all()
            elif len(self._workers) < self._core:
                self._start_worker()
            else:
                self._changed.notify_all()  # the grower times the oldest call
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
            workers = list(self._workers)
        if wait:
            for worker in workers:
                worker.join()
            self._grower.join()

    def _start_worker(self) -> None:
        worker = threading.Thread(
            target=self._work_loop, name=f"{self._name}_{next(self._serial)}", daemon=True
        )
        self._workers.add(worker)
        worker.start()

    def _work_loop(self) -> None:
        me = threading.current_thread()
        while True:
            with self._changed:
                while not self._work:
                    if self._stopping:
                        self._workers.discard(me)
                        return
                    self._idle += 1
                    woke = self._changed.wait(self._IDLE_EXIT_SECONDS)
                    self._idle -= 1
                    if not woke and not self._work and len(self._workers) > self._core:
                        self._workers.discard(me)
                        return
                _, future, fn, args, kwargs = self._work.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:
                future.set_exception(error)
            else:
                future.set_result(result)
            del future, fn, args, kwargs

    def _grow(self) -> None:
        with self._changed:
            while not self._stopping:
                if not self._work:
                    self._changed.wait()
                    continue
                if self._idle:  # a free thread is about to take it
                    self._changed.wait(self._grow_after)
                    continue
                waited = time.monotonic() - self._work[0][0]
                if waited >= self._grow_after and len(self._workers) < self._limit:
                    self._start_worker()
                    self._changed.wait(self._grow_after / 4)  # let it take the call
                else:
                    self._changed.wait(max(self._grow_after - waited, 0.001))


# ---------------------------------------------------------------------------
# Waiting for clients
# ---------------------------------------------------------------------------


class IdleReaper:
    """Cancels calls that wait for a message from their client longer than their limit.

    One thread per server looks at the calls waiting now (a dict entry while a handler is
    inside `next()` on its request stream), at a period of a quarter of the shortest limit.
    """

    def __init__(self, shortest_limit: float) -> None:
        self._waiting: dict[int, tuple[grpc.ServicerContext, float, float, bool]] = {}
        self._keys = itertools.count()
        self._lock = threading.Lock()
        self._streams_ended = threading.Event()
        self._stopped = threading.Event()
        self._period = min(max(shortest_limit / 4, 0.05), 1.0)
        self._thread = threading.Thread(target=self._run, name="idle-reaper", daemon=True)
        self._thread.start()

    def requests(
        self, requests: Iterator[Any], context: grpc.ServicerContext, limit: float
    ) -> Iterator[Any]:
        """A request stream, each `next()` bounded by limit; no more once streams are ended."""
        while not self._streams_ended.is_set():
            try:
                request = self._next(requests, context, limit, stream=True)
            except StopIteration:
                return
            yield request

    def first(self, requests: Iterator[Any], context: grpc.ServicerContext, limit: float) -> Any:
        """A unary call's one request message."""
        try:
            return self._next(requests, context, limit, stream=False)
        except StopIteration:
            raise InvalidArgument(
                "the call carried no request message", reason="NO_REQUEST_MESSAGE"
            ) from None

    def _next(
        self, requests: Iterator[Any], context: grpc.ServicerContext, limit: float, stream: bool
    ) -> Any:
        key = next(self._keys)
        with self._lock:
            self._waiting[key] = (context, time.monotonic(), limit, stream)
        try:
            return next(requests)
        finally:
            with self._lock:
                self._waiting.pop(key, None)

    def end_streams(self) -> None:
        """For the drain: cancel the request streams waiting now; the others end at their next read.

        A unary call waiting for its request is left alone: it was accepted, and the drain
        lets accepted calls finish.
        """
        self._streams_ended.set()
        with self._lock:
            waiting = [entry[0] for entry in self._waiting.values() if entry[3]]
        for context in waiting:
            context.cancel()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self._period):
            now = time.monotonic()
            with self._lock:
                idle = [
                    (context, now - since)
                    for context, since, limit, _ in self._waiting.values()
                    if now - since > limit
                ]
            for context, waited in idle:
                _LOGGER.info("cancelling a call that waited %.1fs for its client", waited)
                context.cancel()


# ---------------------------------------------------------------------------
# The lanes of one server
# ---------------------------------------------------------------------------

TOO_MANY_CALLS = "TOO_MANY_CALLS"
TOO_MANY_STREAMS = "TOO_MANY_STREAMS"
TOO_MANY_WATCHES = "TOO_MANY_WATCHES"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"


class Lanes:
    """The lanes, gate and reaper of one server; the interceptor asks it where a call goes."""

    def __init__(
        self, limits: Limits, domain: str, track: Callable[[Future], None] | None = None
    ) -> None:
        self.limits = limits
        self._domain = domain
        self.calls = ElasticPool(
            "rpc", limits.running, limits.calls, limits.slow_call_seconds, track=track
        )
        self.streams = Lane("stream", limits.streams)
        self.health = Lane("health", limits.health_threads)
        self.watches = Lane("watch", limits.watches)
        self.refusals = Lane("refuse", 2, bounded=False)
        self.reaper = IdleReaper(min(limits.health_request_seconds, limits.stream_idle_seconds))
        self.calls.measure("calls")
        self.streams.measure("streams")
        self.health.measure("health")
        self.watches.measure("watches")

    def service_call(self, handler: Handler) -> Handler:
        """A unary RPC of the service: the calls lane, or a refusal when it is full."""
        return self._admitted(
            handler,
            self.calls,
            "calls",
            self.limits.request_seconds,
            f"the server is running its limit of {self.calls.capacity} calls; retry with backoff",
            TOO_MANY_CALLS,
        )

    def watch_call(self, handler: Handler) -> Handler:
        """A watch stream of the service (shared.watch): the watches lane, or a refusal."""
        return self._admitted(
            handler,
            self.watches,
            "watches",
            self.limits.request_seconds,
            f"the server has its limit of {self.watches.capacity} watch streams open; retry "
            "later or on another instance",
            TOO_MANY_WATCHES,
        )

    def open_call(self, method: str, handler: Handler) -> Handler:
        """Health and reflection: health Check on its lane, every stream on the streams lane."""
        if method == HEALTH_CHECK:
            return self._admitted(
                handler,
                self.health,
                "health",
                self.limits.health_request_seconds,
                f"the server is answering its limit of {self.health.capacity} health checks; retry",
                TOO_MANY_CALLS,
            )
        return self._admitted(
            handler,
            self.streams,
            "streams",
            self.limits.stream_idle_seconds,
            f"the server has its limit of {self.streams.capacity} streams open (reflection "
            "and health Watch); retry later",
            TOO_MANY_STREAMS,
        )

    def _admitted(
        self,
        handler: Handler,
        lane: Lane,
        label: str,
        limit: float,
        refusal: str,
        reason: str,
    ) -> Handler:
        """handler on lane if it has room; else answered RESOURCE_EXHAUSTED at once (and
        counted as a refusal of the lane called label)."""
        if not lane.admits():
            error = ResourceExhausted(
                refusal, reason=reason, metadata={"limit": str(lane.capacity)}
            )
            return self._refusal(handler, label, error)
        return self._on(handler, lane, limit)

    def refuse(self, handler: Handler, error: ServiceError) -> Handler:
        """A stream refused while the server drains."""
        return self._refusal(handler, "streams", error)

    def shutdown(self) -> None:
        self.reaper.end_streams()
        self.reaper.stop()
        for lane in (self.refusals, self.health, self.streams, self.watches, self.calls):
            lane.shutdown(wait=True)

    def _on(self, handler: Handler, lane: Lane, limit: float) -> Handler:
        """handler on lane, reading its requests itself under the reaper's watch.

        Every handler becomes request-streaming, so that grpc never blocks a thread waiting
        for a unary request on its own, out of the reaper's sight.
        """
        behavior = _behavior(handler)
        reaper = self.reaper
        request_limit = min(limit, self.limits.request_seconds)

        domain = self._domain

        def first(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            try:
                return reaper.first(requests, context, request_limit)
            except ServiceError as error:
                context.abort_with_status(rpc_status.to_status(to_status(error, domain)))

        if handler.request_streaming:

            def run(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
                return behavior(reaper.requests(requests, context, limit), context)

        else:

            def run(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
                return behavior(first(requests, context), context)

        run.experimental_thread_pool = lane  # type: ignore[attr-defined]  # grpc reads it
        factory = (
            grpc.stream_stream_rpc_method_handler
            if handler.response_streaming
            else grpc.stream_unary_rpc_method_handler
        )
        return factory(
            run,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _refusal(self, handler: Handler, lane: str, error: ServiceError) -> Handler:
        status = rpc_status.to_status(to_status(error, self._domain))
        metrics = active_metrics()
        refused = metrics.lane_refusals.labels(lane, error.reason) if metrics else None

        def refuse(_requests: Iterator[Any], context: grpc.ServicerContext) -> None:
            _LOGGER.info("refused a call: %s", error.message)
            if refused is not None:
                refused.inc()
            context.abort_with_status(status)

        refuse.experimental_thread_pool = self.refusals  # type: ignore[attr-defined]
        factory = (
            grpc.stream_stream_rpc_method_handler
            if handler.response_streaming
            else grpc.stream_unary_rpc_method_handler
        )
        return factory(refuse, response_serializer=handler.response_serializer)


def _behavior(handler: Handler) -> Any:
    return (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    )
