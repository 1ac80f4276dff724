"""A real OTLP/gRPC trace receiver (the collector's protocol, from opentelemetry-proto).

The tests start one in their own process and read the spans a service exported to it; the
bench (`--tracing`) runs one as a process of its own, counting spans only:

    python -m tests.otlp      # prints `listening on HOST:PORT`; on SIGTERM, `received N spans`
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

SPAN_WAIT_SECONDS = 60  # generous: the machine is loaded; spans arrive within the batch delay


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Every span exported to it (or, keep=False, their count only)."""

    def __init__(self, keep: bool = True) -> None:
        self.count = 0
        self._keep = keep
        self._spans: list[trace_pb2.Span] = []
        self._arrived = threading.Condition()

    def Export(self, request, context):
        with self._arrived:
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    self.count += len(scope.spans)
                    if self._keep:
                        self._spans.extend(scope.spans)
            self._arrived.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def wait_for(self, matches: Callable[[trace_pb2.Span], bool]) -> trace_pb2.Span:
        """The first span that matches, once it has arrived."""
        with self._arrived:
            assert self._arrived.wait_for(
                lambda: any(map(matches, self._spans)), timeout=SPAN_WAIT_SECONDS
            ), "no such span arrived"
            return next(filter(matches, self._spans))

    def server_span(self, method: str) -> trace_pb2.Span:
        """The first server span of method (`package.Service/Method`)."""
        return self.wait_for(
            lambda span: span.kind == trace_pb2.Span.SPAN_KIND_SERVER and span.name == method
        )

    def children(self, parent: trace_pb2.Span) -> list[trace_pb2.Span]:
        """parent's children that have arrived, in the order they started."""
        with self._arrived:
            found = [span for span in self._spans if span.parent_span_id == parent.span_id]
        return sorted(found, key=lambda span: span.start_time_unix_nano)

    def trace(self, trace_id: bytes) -> list[trace_pb2.Span]:
        with self._arrived:
            return [span for span in self._spans if span.trace_id == trace_id]


@contextlib.contextmanager
def receiving(keep: bool = True) -> Iterator[tuple[Receiver, str]]:
    """A receiver listening on 127.0.0.1, and its endpoint (OTEL_EXPORTER_OTLP_ENDPOINT)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    found = Receiver(keep)
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(found, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield found, f"http://127.0.0.1:{port}"
    finally:
        server.stop(None)


def main() -> None:
    from shared.server import wait_for_signal

    with receiving(keep=False) as (found, endpoint):
        print(f"listening on {endpoint.removeprefix('http://')}", flush=True)
        wait_for_signal()
        print(f"received {found.count} spans", flush=True)


if __name__ == "__main__":
    sys.exit(main())
