"""Load-generator processes: grpc.aio clients driving a closed loop of calls.

Each process keeps its concurrency share of coroutines busy: a coroutine sends its next
call as soon as the previous one returns (closed loop), so latency and throughput are
measured together. The parent and every generator meet at a barrier when the warm-up
ends and again when the measured window ends; the parent reads the server's CPU time
at those two moments.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from dataclasses import dataclass, field

import grpc

# Replaced in every request of one pass through a sequence by the same fresh 32-character
# value: a new idempotency key per soft patch and its ack. Same length, so the serialized
# message stays valid without re-encoding.
FRESH = b"@" * 32


@dataclass(frozen=True)
class Step:
    """One call: the full method path, the serialized request, the call metadata."""

    method: str
    request: bytes
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Load:
    """What to drive: coroutine k loops over sequences[k % len(sequences)]."""

    address: str
    sequences: list[list[Step]]
    concurrency: int
    warmup: float
    duration: float


@dataclass
class Result:
    """One generator's measured window."""

    latencies: list[float] = field(default_factory=list)  # seconds, calls ended in the window
    by_step: dict[int, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0


def _share(load: Load, index: int, processes: int) -> tuple[int, list[int]]:
    """Which coroutines (global numbers) generator `index` of `processes` runs."""
    numbers = list(range(index, load.concurrency, processes))
    return len(numbers), numbers


async def _drive(load: Load, numbers: list[int], barrier) -> Result:
    result = Result()
    state = {"measuring": False, "stop": False}
    loop = asyncio.get_running_loop()
    async with grpc.aio.insecure_channel(load.address) as channel:
        calls = {
            step.method: channel.unary_unary(step.method)  # bytes in, bytes out
            for sequence in load.sequences
            for step in sequence
        }

        async def worker(number: int) -> None:
            sequence = load.sequences[number % len(load.sequences)]
            while not state["stop"]:
                fresh = uuid.uuid4().hex.encode()
                for position, step in enumerate(sequence):
                    request = step.request
                    if FRESH in request:
                        request = request.replace(FRESH, fresh)
                    started = time.perf_counter()
                    try:
                        await calls[step.method](request, metadata=step.metadata)
                    except grpc.aio.AioRpcError as exc:
                        if len(result.errors) < 20:
                            result.errors.append(
                                f"{step.method}: {exc.code().name} {exc.details()}"
                            )
                        break  # the rest of the sequence depends on this call
                    if state["measuring"]:
                        took = time.perf_counter() - started
                        result.latencies.append(took)
                        result.by_step.setdefault(position, []).append(took)

        tasks = [asyncio.create_task(worker(number)) for number in numbers]
        await asyncio.sleep(load.warmup)
        await loop.run_in_executor(None, barrier.wait)
        state["measuring"] = True
        started = time.perf_counter()
        await asyncio.sleep(load.duration)
        state["measuring"] = False
        result.elapsed = time.perf_counter() - started
        await loop.run_in_executor(None, barrier.wait)
        state["stop"] = True
        await asyncio.gather(*tasks)
    return result


def _serve_jobs(index: int, processes: int, jobs, results, barrier) -> None:
    while True:
        load = jobs.get()
        if load is None:
            return
        count, numbers = _share(load, index, processes)
        if not count:
            barrier.wait()
            barrier.wait()
            results.put(Result())
            continue
        results.put(asyncio.run(_drive(load, numbers, barrier)))


class Generators:
    """A pool of load-generator processes, started once and reused for every measurement."""

    def __init__(self, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._count = processes
        self._barrier = context.Barrier(processes + 1)
        self._results = context.Queue()
        self._jobs = [context.Queue() for _ in range(processes)]
        self._processes = [
            context.Process(
                target=_serve_jobs,
                args=(index, processes, self._jobs[index], self._results, self._barrier),
                daemon=True,
            )
            for index in range(processes)
        ]
        for process in self._processes:
            process.start()

    def run(self, load: Load, *, on_start, on_end) -> Result:
        """Drive load; on_start/on_end run in this process at the edges of the window."""
        for jobs in self._jobs:
            jobs.put(load)
        self._barrier.wait(timeout=load.warmup + 120)
        on_start()
        self._barrier.wait(timeout=load.duration + 120)
        on_end()
        merged = Result()
        for _ in range(self._count):
            part = self._results.get(timeout=120)
            merged.latencies.extend(part.latencies)
            for position, values in part.by_step.items():
                merged.by_step.setdefault(position, []).extend(values)
            merged.errors.extend(part.errors)
            merged.elapsed = max(merged.elapsed, part.elapsed)
        return merged

    def close(self) -> None:
        for jobs in self._jobs:
            jobs.put(None)
        for process in self._processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
