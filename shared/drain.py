"""Graceful shutdown: tell load balancers first, refuse new calls, let accepted calls finish.

What grpcio 1.85's sync `server.stop(grace)` does (grpc/_server.py `_stop`, and the core's
`Server::ShutdownAndNotify`; each point seen in experiments on this machine):
- at once it closes the listening socket and starts a graceful GOAWAY on every connection,
  so new calls — health checks included — fail on the client with UNAVAILABLE ("failed to
  connect"): with stop() alone a probe never reads NOT_SERVING, because
  `enter_graceful_shutdown()` flips the status a moment before the listener is gone;
- calls already handed to the executor (running or queued) run to completion; those still
  running when `grace` elapses are cancelled (the client sees CANCELLED);
- a call that reaches the server in the instant of the stop — not yet matched to the
  application, or sent during the GOAWAY's ping round trip — is dropped by the core and
  its client sees CANCELLED, though it never ran (grpc/grpc#41785, unfixed in 1.85). Six
  clients calling every 10 ms met this in 4 of 10 plain `stop()` runs.

Hence the drain, in this order:
1. health NOT_SERVING (open Watch streams get it and end: see HealthServicer), open
   reflection streams end (shared.lanes), and the interceptor refuses every call and stream
   that arrives from now on with UNAVAILABLE (reason SHUTTING_DOWN), health Check excepted,
   while the listener stays open: probes read NOT_SERVING, and callers get an answer that
   tells them to go elsewhere. Streams are not waited for: they last as long as a client
   likes;
2. wait until the calls accepted before that have finished (at most the grace period), and
   at least `notice` seconds, so that clients still calling have been refused once and moved
   away before the listener closes — a client that keeps calling a server which refuses it
   can still meet the CANCELLED race above, one that honours the refusal cannot;
3. `server.stop(remaining grace)`: close the listener; anything still running keeps the rest
   of the grace period, then is cancelled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health

from shared.errors import Unavailable

_LOGGER = logging.getLogger(__name__)

SHUTTING_DOWN = "SHUTTING_DOWN"
# Least time a service process keeps refusing before its listener closes: clients calling
# at all are refused within it, and a probe every second reads NOT_SERVING once.
SHUTDOWN_NOTICE = 1.0


class Drain:
    """The shutdown state a server shares with its interceptor and its executor."""

    def __init__(self) -> None:
        self._draining = threading.Event()
        self._idle = threading.Condition()
        self._accepted = 0  # calls handed to the executor before the drain began, not done

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def begin(self) -> None:
        """From now on new calls are refused; the accepted ones keep running."""
        self._draining.set()

    def refuse(self, request: Any, context: grpc.ServicerContext) -> None:
        """The handler of every call that arrives once the drain has begun."""
        raise Unavailable(
            "the server is shutting down; retry the call on another instance",
            reason=SHUTTING_DOWN,
        )

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every call accepted before `begin` has finished; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._accepted:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def track(self, future: futures.Future[Any]) -> None:
        # Refusals submitted during the drain are not waited for: under steady load they
        # never stop arriving, and stop()'s grace still lets the queued ones answer.
        if self.draining:
            return
        with self._idle:
            self._accepted += 1
        future.add_done_callback(self._done)

    def _done(self, _future: futures.Future[Any]) -> None:
        with self._idle:
            self._accepted -= 1
            if not self._accepted:
                self._idle.notify_all()


class HealthServicer(health.HealthServicer):
    """grpc's health service: Watch streams on threads of their own, ended by the drain.

    The library's default Watch (non-blocking: no thread while open) deadlocked the whole
    server in 1.85.1: `set()` and a new Watch send a message while holding the servicer's
    lock, and a send waits for grpc's polling thread, which may at that moment be running a
    closed Watch's callback that waits for the same lock. 200 Watch streams closed while the
    drain set NOT_SERVING hung the process for good (`test_streams.py`). In blocking mode a
    send only queues the status for the stream's own thread, so the lock is never held
    across a wait; the thread is the streams lane's (shared.lanes), and counted there.

    A Watch stream stays open until its client leaves: left open, it kept `server.stop()`
    waiting for the whole grace period, and then ended UNAVAILABLE. Now its last message is
    NOT_SERVING and it ends at once, so a watching client learns of the drain immediately.
    """

    def __init__(self) -> None:
        super().__init__(experimental_non_blocking=False)

    def enter_graceful_shutdown(self) -> None:
        super().enter_graceful_shutdown()
        with self._lock:  # the library's own lock and table of open Watch streams (1.85.1)
            for callbacks in self._send_response_callbacks.values():
                for send in callbacks:
                    send(None)  # None ends a stream, as when its client goes away


def drain_and_stop(
    server: grpc.Server,
    health_servicer: health.HealthServicer,
    drain: Drain,
    grace: float,
    notice: float = 0.0,
    end_streams: Callable[[], None] = lambda: None,
) -> None:
    """Steps 1-3 of the module docstring; returns once the server has stopped."""
    started = time.monotonic()
    health_servicer.enter_graceful_shutdown()  # first: a refused caller's probe agrees
    drain.begin()
    end_streams()
    if not drain.wait_idle(grace):
        _LOGGER.warning("calls still running after the %.1fs grace period: cancelling", grace)
    elapsed = time.monotonic() - started
    if elapsed < min(notice, grace):
        time.sleep(min(notice, grace) - elapsed)
    server.stop(max(0.0, grace - (time.monotonic() - started))).wait()
    _LOGGER.info("drained in %.3fs", time.monotonic() - started)
