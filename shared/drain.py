"""Graceful shutdown: tell load balancers first, refuse new calls, let accepted calls finish.

What grpcio 1.85's sync `server.stop(grace)` does (src/python/grpcio/grpc/_server.py `_stop`,
and the core's `Server::ShutdownAndNotify`, confirmed by experiment): at once it closes the
listening socket and sends GOAWAY on every connection, so a new call — health checks
included — fails on the client with UNAVAILABLE ("failed to connect"); calls already
handed to the executor run to completion, and only those still running when `grace`
elapses are cancelled (the client then sees CANCELLED). So with stop() alone a health
check never answers NOT_SERVING: `enter_graceful_shutdown()` flips the status and the
listener is gone a moment later, before a load balancer's probe can read it.

Hence the drain, in this order:
1. health NOT_SERVING, and the interceptor refuses every call that arrives from now on with
   UNAVAILABLE (reason SHUTTING_DOWN) — the listener stays open, so probes read
   NOT_SERVING and callers get an answer they can retry elsewhere;
2. wait until the calls accepted before the signal have finished (at most the grace period);
3. `server.stop(remaining grace)`: close the listener; anything still running keeps the rest
   of the grace period.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures

from shared.errors import Unavailable

SHUTTING_DOWN = "SHUTTING_DOWN"


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

    def refuse(self, request, context) -> None:
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

    def _track(self, future: futures.Future) -> None:
        # Refusals submitted during the drain are not waited for: under steady load they
        # never stop arriving, and stop()'s grace still lets the queued ones answer.
        if self.draining:
            return
        with self._idle:
            self._accepted += 1
        future.add_done_callback(self._done)

    def _done(self, _future: futures.Future) -> None:
        with self._idle:
            self._accepted -= 1
            if not self._accepted:
                self._idle.notify_all()


class CallExecutor(futures.ThreadPoolExecutor):
    """The RPC thread pool; counts the calls grpc hands it, for Drain.wait_idle.

    grpc submits one task per accepted call and the task's future completes whether the
    handler ran or the client went away first, so the count cannot leak.
    """

    def __init__(self, drain: Drain, max_workers: int, thread_name_prefix: str) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._drain = drain

    def submit(self, fn, /, *args, **kwargs) -> futures.Future:
        future = super().submit(fn, *args, **kwargs)
        self._drain._track(future)
        return future
