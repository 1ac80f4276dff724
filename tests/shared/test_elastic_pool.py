"""shared.lanes.ElasticPool: a call behind blocked threads still runs; a burst runs every call."""

from __future__ import annotations

import threading
import time

from shared.lanes import ElasticPool


def _warm(pool: ElasticPool, threads: int) -> None:
    """Start `threads` workers and let them go idle."""
    gate = threading.Barrier(threads + 1)
    started = [pool.submit(gate.wait, 5) for _ in range(threads)]
    gate.wait(5)
    for future in started:
        future.result(5)
    time.sleep(0.05)


def test_a_call_queued_behind_blocked_threads_gets_a_new_thread():
    pool = ElasticPool("test", core=2, limit=4, grow_after=0.05)
    release = threading.Event()
    try:
        _warm(pool, 2)
        # Both idle workers are handed a call that blocks, back to back (neither has woken
        # yet when the next call comes): the third waits with no idle worker, and only the
        # grower can give it a thread.
        blocked = [pool.submit(release.wait, 10) for _ in range(2)]
        started = time.monotonic()
        assert pool.submit(lambda: "ran").result(timeout=5) == "ran"
        assert time.monotonic() - started < 2
        assert not any(future.done() for future in blocked)
    finally:
        release.set()
        pool.shutdown()


def test_a_burst_on_idle_workers_runs_every_call():
    pool = ElasticPool("test", core=4, limit=8, grow_after=0.05)
    try:
        for _ in range(20):
            _warm(pool, 4)
            burst = [pool.submit(time.sleep, 0.001) for _ in range(50)]
            for future in burst:
                future.result(timeout=5)
    finally:
        pool.shutdown()
