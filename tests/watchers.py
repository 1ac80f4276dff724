"""A watch-stream client for tests: the stream read on a thread of its own, its events queued."""

from __future__ import annotations

import queue
import re
import threading
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

_END = object()


def reason_of(error: grpc.RpcError) -> str:
    """The ErrorInfo reason of a stream's end; from the message when the status came with
    the stream's cancellation, which carries no details (shared/watch.py)."""
    status = rpc_status.from_call(error)
    if status is None:
        found = re.search(r"\(reason (\w+)\)$", error.details() or "")
        return found.group(1) if found else ""
    info = error_details_pb2.ErrorInfo()
    for detail in status.details:
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
    return info.reason


class StreamWatcher:
    """An open watch stream (any service's): `next()` its next event, `ending()` how it ended."""

    def __init__(self, call) -> None:
        self.call = call
        self._queue: queue.Queue = queue.Queue()
        self._ahead: list = []  # taken from the queue and not consumed: comes first, in order
        self.error: grpc.RpcError | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self.call:
                self._queue.put(event)
        except grpc.RpcError as error:
            self.error = error
        self._queue.put(_END)

    def _get(self, timeout: float) -> Any:
        return self._ahead.pop(0) if self._ahead else self._queue.get(timeout=timeout)

    def next(self, timeout: float = 10.0) -> Any:
        item = self._get(timeout)
        if item is _END:
            self._ahead.insert(0, _END)
            raise AssertionError(f"the stream ended: {self.error}")
        return item

    def take(self, count: int, timeout: float = 10.0) -> list[Any]:
        return [self.next(timeout) for _ in range(count)]

    def types(self, count: int, timeout: float = 10.0) -> list[str]:
        return [_type_name(event) for event in self.take(count, timeout)]

    def idle(self, seconds: float = 0.5) -> bool:
        """True if no event (and no end) arrives within seconds."""
        try:
            item = self._get(seconds)
        except queue.Empty:
            return True
        self._ahead.insert(0, item)  # put back first: the events keep their order
        return False

    def ending(self, timeout: float = 10.0) -> grpc.RpcError | None:
        """Wait for the end of the stream (after its remaining events): its error, or None
        if it ended with OK."""
        while True:
            item = self._get(timeout)
            if item is _END:
                self._ahead.insert(0, _END)
                return self.error

    def cancel(self) -> None:
        self.call.cancel()
        self._thread.join(5)


def _type_name(event: Any) -> str:
    """The name of an event's `type` enum value."""
    enum = event.DESCRIPTOR.fields_by_name["type"].enum_type
    return enum.values_by_number[event.type].name
