"""A real OTLP/gRPC trace receiver for tests, and what a service process needs to export to it."""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.support import bare_server

SPAN_WAIT_SECONDS = 60  # generous: the machine is loaded; spans arrive within the batch delay


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver: every span exported to it, in arrival order."""

    def __init__(self) -> None:
        self.spans: queue.Queue[trace_pb2.Span] = queue.Queue()

    def Export(self, request, context):
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans.put(span)
        return trace_service_pb2.ExportTraceServiceResponse()

    def take(self, count: int) -> list[trace_pb2.Span]:
        return [self.spans.get(timeout=SPAN_WAIT_SECONDS) for _ in range(count)]

    def first_named(self, name: str) -> trace_pb2.Span:
        """The next span called name, the others passed over (e.g. health checks')."""
        while (span := self.spans.get(timeout=SPAN_WAIT_SECONDS)).name != name:
            pass
        return span


@contextlib.contextmanager
def otlp_receiver() -> Iterator[tuple[Receiver, str]]:
    """A receiver on port 0 for the block, and its endpoint URL."""
    found = Receiver()
    with bare_server(trace_service_pb2_grpc.add_TraceServiceServicer_to_server, found) as address:
        yield found, f"http://{address}"


def exporting_to(endpoint: str) -> dict[str, str]:
    """The environment of a service process that exports its spans to endpoint, soon."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # milliseconds: spans leave soon after each call
    }


def attributes(span: trace_pb2.Span) -> dict[str, object]:
    found: dict[str, object] = {}
    for attribute in span.attributes:
        value = attribute.value
        found[attribute.key] = getattr(value, value.WhichOneof("value"))
    return found
