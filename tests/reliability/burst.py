"""Bursts of one identical call from many client processes x threads, released together.

`Burst` keeps M client processes (multiprocessing 'spawn': no state inherited from the test
process) alive across bursts; each runs N threads, and all M x N wait on one barrier, so
that the calls leave as close together as the machine allows. Results come back as
(status code name, response bytes as sent or error details).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import grpc

BARRIER_TIMEOUT = 60.0
CALL_TIMEOUT = 60.0

_barrier = None  # set in each client process by _adopt


def _adopt(barrier) -> None:
    global _barrier
    _barrier = barrier


def _identity(data: bytes) -> bytes:
    return data


def _fire(
    address: str, method: str, request: bytes, metadata: tuple, threads: int
) -> list[tuple[str, bytes]]:
    """In a client process: N threads call method once each, after the barrier."""
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)  # connected before the barrier
        call = channel.unary_unary(
            method, request_serializer=_identity, response_deserializer=_identity
        )

        def one(_: int) -> tuple[str, bytes]:
            _barrier.wait(timeout=BARRIER_TIMEOUT)
            try:
                return "OK", call(request, metadata=list(metadata), timeout=CALL_TIMEOUT)
            except grpc.RpcError as error:
                return error.code().name, (error.details() or "").encode()

        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(one, range(threads)))


class Burst:
    """M client processes of N threads; `fire` sends one call from each of the M x N threads."""

    def __init__(self, processes: int, threads: int) -> None:
        self.processes, self.threads = processes, threads
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(processes * threads)
        self._pool = ProcessPoolExecutor(
            max_workers=processes, mp_context=context, initializer=_adopt, initargs=(barrier,)
        )

    def fire(
        self, addresses: Sequence[str], method: str, request: bytes, metadata
    ) -> list[tuple[str, bytes]]:
        """Client process i calls addresses[i % len(addresses)]; every thread's result."""
        futures = [
            self._pool.submit(
                _fire,
                addresses[index % len(addresses)],
                method,
                request,
                tuple(metadata),
                self.threads,
            )
            for index in range(self.processes)
        ]
        return [result for future in futures for result in future.result()]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
