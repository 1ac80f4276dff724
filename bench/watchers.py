"""Watchers: a process of its own holding many server streams open, on grpc.aio.

grpc.aio keeps a stream as a coroutine, so 1,000 streams cost the client process little and
leave the server's numbers to the server. Each stream reads its first message (the watch's
SNAPSHOT) before the holder reports ready; what arrives after it is recorded with its
arrival time (time.time(), the clock the services stamp events with on the same host).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass, field

import grpc

STREAMS_PER_CHANNEL = 100  # about what one client connection carries before opening another
OPEN_TIMEOUT = 120.0


@dataclass(frozen=True)
class Watch:
    """One stream to open: the full method path, the serialized request, its metadata."""

    address: str
    method: str
    request: bytes
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass
class Held:
    """What the holder saw: streams opened, errors, and the messages after each first one."""

    opened: int = 0
    open_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    # (arrival time.time(), index of the watch, the message's bytes)
    received: list[tuple[float, int, bytes]] = field(default_factory=list)
    ended: int = 0  # streams the server ended before the holder stopped


async def _hold(watches: list[Watch], connection) -> Held:
    held = Held()
    loop = asyncio.get_running_loop()
    channels: dict[tuple[str, int], grpc.aio.Channel] = {}
    started = time.perf_counter()
    calls = []
    for index, watch in enumerate(watches):
        key = (watch.address, index // STREAMS_PER_CHANNEL)
        if key not in channels:
            channels[key] = grpc.aio.insecure_channel(watch.address)
        calls.append(
            channels[key].unary_stream(watch.method)(watch.request, metadata=watch.metadata)
        )

    async def first(index: int, call) -> bool:
        try:
            await call.read()
            return True
        except grpc.aio.AioRpcError as exc:
            if len(held.errors) < 20:
                held.errors.append(f"{watches[index].method}: {exc.code().name} {exc.details()}")
            return False

    opened = await asyncio.gather(*(first(i, call) for i, call in enumerate(calls)))
    held.opened = sum(opened)
    held.open_seconds = time.perf_counter() - started

    async def follow(index: int, call) -> None:
        try:
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    held.ended += 1
                    return
                held.received.append((time.time(), index, message))
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError as exc:
            held.ended += 1
            if len(held.errors) < 20:
                held.errors.append(f"{watches[index].method}: {exc.code().name} {exc.details()}")

    followers = [asyncio.create_task(follow(i, call)) for i, call in enumerate(calls) if opened[i]]
    connection.send(("ready", held.opened, held.open_seconds, list(held.errors)))
    while await loop.run_in_executor(None, connection.recv) == "count":  # or "stop"
        connection.send(len(held.received))
    for call in calls:
        call.cancel()
    for task in followers:
        task.cancel()
    await asyncio.gather(*followers, return_exceptions=True)
    for channel in channels.values():
        await channel.close()
    return held


def _run(watches: list[Watch], connection) -> None:
    connection.send(("held", asyncio.run(_hold(watches, connection))))


class Watchers:
    """Open the streams (blocks until each has its first message or failed); `stop` ends them
    and returns what was seen."""

    def __init__(self, watches: list[Watch]) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_run, args=(watches, child), daemon=True)
        self._process.start()
        if not self._connection.poll(OPEN_TIMEOUT):
            self._process.kill()
            raise TimeoutError(f"{len(watches)} watches did not open in {OPEN_TIMEOUT:.0f} s")
        _, self.opened, self.open_seconds, self.errors = self._connection.recv()

    def received(self) -> int:
        """How many messages have arrived after the first ones, so far."""
        self._connection.send("count")
        return self._connection.recv()

    def settle(self, quiet: float = 1.0, limit: float = 30.0) -> None:
        """Return once no message has arrived for `quiet` seconds (at most `limit`)."""
        deadline = time.monotonic() + limit
        count = self.received()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self.received()
            if now == count:
                return
            count = now

    @property
    def pid(self) -> int:
        return self._process.pid

    def stop(self) -> Held:
        self._connection.send("stop")
        _, held = self._connection.recv()
        self._process.join(timeout=30)
        return held
