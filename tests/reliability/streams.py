"""Idle and slow calls of every kind, held open by a test: streams, unary calls with no request.

The streaming methods come from the services a server lists through reflection, and their
message types from the descriptors, so a new streaming method is held open too.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.support import bearer

ANSWER_WITHIN = 1.0  # seconds: what "still answers" means
# The report a held WatchReport watches (the tests create it first); a service's watch
# streams are held with a valid request and token, so that they stay open.
WATCHED_REPORT = "team:sales-dashboard"
OPEN_PREFIXES = ("grpc.health.", "grpc.reflection.")


def listed_services(channel: grpc.Channel) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (response,) = stub.ServerReflectionInfo(iter([request]), timeout=5)
    return [service.name for service in response.list_services_response.service]


def streaming_methods(channel: grpc.Channel) -> list:
    """Every method with a request or response stream of every service the server lists."""
    pool = descriptor_pool.Default()
    return [
        method
        for name in listed_services(channel)
        for method in pool.FindServiceByName(name).methods
        if method.client_streaming or method.server_streaming
    ]


def path(method) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


class HeldCalls:
    """Calls a test holds open: each sent its first request (or none) and waits, idle."""

    def __init__(self) -> None:
        self._release = threading.Event()
        self._calls: list = []

    def _requests(self, first) -> Iterator:
        if first is not None:
            yield first
        self._release.wait()

    def stream(self, channel: grpc.Channel, method, metadata=()) -> None:
        """Open method as a stream; return once the server has answered its first request."""
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        first = request_type()
        if not method.containing_service.full_name.startswith(OPEN_PREFIXES):
            if "id" in method.input_type.fields_by_name:
                first = request_type(id=WATCHED_REPORT)
            metadata = metadata or bearer()
        if method.client_streaming:
            call = channel.stream_stream(
                path(method),
                request_serializer=request_type.SerializeToString,
                response_deserializer=response_type.FromString,
            )(self._requests(first), metadata=metadata)
        else:
            call = channel.unary_stream(
                path(method),
                request_serializer=request_type.SerializeToString,
                response_deserializer=response_type.FromString,
            )(first, metadata=metadata)
        self._calls.append(call)
        next(call)  # the server runs it: admitted, not queued

    def without_request(self, channel: grpc.Channel, method_path: str, metadata=()) -> None:
        """A unary method called as a stream that never sends its request message."""
        call = channel.stream_stream(method_path)(self._requests(None), metadata=metadata)
        self._calls.append(call)

    def add(self, call) -> None:
        self._calls.append(call)

    def release(self) -> None:
        self._release.set()
        for call in self._calls:
            call.cancel()


@contextlib.contextmanager
def held() -> Iterator[HeldCalls]:
    calls = HeldCalls()
    try:
        yield calls
    finally:
        calls.release()


def assert_still_answering(channel: grpc.Channel, unary_call) -> None:
    """Health Check says SERVING, and unary_call succeeds, each within ANSWER_WITHIN."""
    answer = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=ANSWER_WITHIN
    )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    unary_call(timeout=ANSWER_WITHIN)


def open_watch(channel: grpc.Channel):
    return health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
