"""Calling any RPC of a service by its descriptor, so that new RPCs are covered without edits."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import MethodDescriptor

from cohort_service.server import SERVICE as COHORT
from report_service.server import SERVICE as REPORT
from shared.service import ServiceDefinition
from shared.v1 import auth_pb2

DEFINITIONS: dict[str, ServiceDefinition] = {"cohort": COHORT, "report": REPORT}


def methods_of(definition: ServiceDefinition) -> Iterator[MethodDescriptor]:
    pool = descriptor_pool.Default()
    for name in definition.service_names:
        yield from pool.FindServiceByName(name).methods


def all_methods() -> Iterator[tuple[str, MethodDescriptor]]:
    """(service key, method) for every RPC of both services."""
    for service in sorted(DEFINITIONS):
        for method in methods_of(DEFINITIONS[service]):
            yield service, method


def request_type(method: MethodDescriptor) -> type:
    return message_factory.GetMessageClass(method.input_type)


def access_rule(method: MethodDescriptor) -> auth_pb2.MethodAuth:
    return method.GetOptions().Extensions[auth_pb2.auth]


def invoke(channel: grpc.Channel, method: MethodDescriptor, request, metadata, timeout=30):
    """Call method with request (a message, or its bytes as they are); raises grpc.RpcError.

    A watch (server-streaming) answers with its first message (None if it ended at once with
    OK), after which the stream is cancelled: an open watch never ends by itself.
    """
    response_type = message_factory.GetMessageClass(method.output_type)
    if method.server_streaming:
        responses = channel.unary_stream(
            f"/{method.containing_service.full_name}/{method.name}",
            request_serializer=lambda r: r if isinstance(r, bytes) else r.SerializeToString(),
            response_deserializer=response_type.FromString,
        )(request, metadata=metadata, timeout=timeout)
        try:
            return next(responses, None)
        finally:
            responses.cancel()
    stub = channel.unary_unary(
        f"/{method.containing_service.full_name}/{method.name}",
        request_serializer=lambda r: r if isinstance(r, bytes) else r.SerializeToString(),
        response_deserializer=response_type.FromString,
    )
    return stub(request, metadata=metadata, timeout=timeout)
