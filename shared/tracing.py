"""OpenTelemetry tracing: one server span per RPC, exported over OTLP (off unless configured).

Enabled by shared.config (OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint set); the SDK and the
OTLP exporter then read their own standard OTEL_* variables (endpoint, headers, service name,
sampler, batch delays), the one exception to shared.config reading the environment. Off, no
span is made: the interceptor asks `active()` first, as it does for metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import grpc
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.metrics import Handler, behavior_of, failed_code, with_behavior

_TRACE_CONTEXT = TraceContextTextMapPropagator()
_TRACER: Tracer | None = None
_PROVIDERS: list[Any] = []  # the SDK's, flushed by shutdown()
# Codes that are a server error on a server span (OpenTelemetry's gRPC conventions); the
# others are the client's doing: the span keeps status UNSET, the code says what happened.
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def active() -> Tracer | None:
    """The tracer of this process, or None: tracing is off."""
    return _TRACER


def enable(service: str) -> Tracer:
    """Export spans over OTLP/gRPC from this process (once; after a fork, in the child)."""
    global _TRACER
    if _TRACER is None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, when set, win over the default name.
        resource = Resource.create({SERVICE_NAME: service}).merge(Resource.create())
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        _TRACER = provider.get_tracer("shared.tracing")
        _PROVIDERS.append(provider)
    return _TRACER


def shutdown() -> None:
    """Flush the spans still queued (on a graceful exit)."""
    for provider in _PROVIDERS:
        provider.shutdown()


def _parent(metadata: Iterable[tuple[str, str | bytes]]) -> Any:
    carrier = {key: value for key, value in metadata if key == "traceparent" or key == "tracestate"}
    text = {key: value for key, value in carrier.items() if isinstance(value, str)}
    return _TRACE_CONTEXT.extract(text) if text else None


def traced(tracer: Tracer, method: str, handler: Handler) -> Handler:
    """handler inside a server span named after method, ending with the code the client gets.

    Calls with one response only (all of ours; shared.lanes makes every handler
    request-streaming); a response stream (health Watch, reflection) is returned as it is.
    """
    if handler.response_streaming:
        return handler
    _, behavior = behavior_of(handler)
    service, _, name = method.lstrip("/").partition("/")

    def run(request: Any, context: Any, call: Callable[[], Any]) -> Any:
        with tracer.start_as_current_span(
            f"{service}/{name}",
            context=_parent(context.invocation_metadata()),
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
            record_exception=False,  # client mistakes are not exceptions worth an event
            set_status_on_exception=False,
        ) as span:
            try:
                result = call()
            except BaseException:
                code = failed_code(context)
                raise
            else:
                code = context.code() or grpc.StatusCode.OK
            finally:
                _end(span, code, context)
            return result

    def recorded(request: Any, context: Any) -> Any:
        return run(request, context, lambda: behavior(request, context))

    return with_behavior(handler, recorded)


def _end(span: Any, code: grpc.StatusCode, context: Any) -> None:
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in _SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, code.name))
