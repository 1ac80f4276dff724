"""OpenTelemetry tracing: a span per RPC, with its transactions, statements, driver hooks and
retries inside, exported over OTLP (off unless configured).

Enabled by shared.config (OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint set); the SDK and the
OTLP exporter then read their own standard OTEL_* variables (endpoint, headers, timeout,
service name, sampler, batch delays), the one exception to shared.config reading the
environment. Off, no span is made and nothing of the SDK is imported: every recording site
asks `active()` first, as it does for metrics.

What a call's trace holds:

    <service>/<method>            server span (rpc.* conventions, the code the client gets)
      transaction                 one per database transaction (shared.db), retries included
        BEGIN, SELECT, ..., COMMIT    a span per statement: OpenTelemetry's own DB-API
                                      instrumentations of psycopg2 and sqlite3
        report driver <hook>      a report driver's hook (report_service.drivers)
    with a `transaction retry` event on the server span per contention retry (shared.calls).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.metrics import Handler, behavior_of, run_to_code, stream_to_code, with_behavior

_LOGGER = logging.getLogger(__name__)

# The longest a stopping process waits for its last spans to reach the collector, after the
# drain. The SDK would wait as long as the exporter retries (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s
# by default: a stop with the collector down took 8.3 s), and its own shutdown takes no
# timeout; an unreachable collector must not hold a rollout. Reachable, a flush takes
# milliseconds. docs/deployment.md counts it in the termination grace period.
SPAN_FLUSH_SECONDS = 2.0

_TRACE_CONTEXT = TraceContextTextMapPropagator()
_TRACER: Tracer | None = None
_EXPORTS: list[tuple[Any, Any]] = []  # (the SDK's provider, its exporter): shutdown() ends both
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
    """Export spans over OTLP/gRPC from this process (once; after a fork, in the child).

    Before the store opens: the statement spans come from connections opened afterwards.
    """
    global _TRACER
    if _TRACER is None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.psycopg2 import Psycopg2Instrumentor
        from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, when set, win over the default name.
        resource = Resource.create({SERVICE_NAME: service}).merge(Resource.create())
        provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        # Statement spans: the instrumentations wrap psycopg2.connect and sqlite3.connect, which
        # peewee looks up each time it connects (shared.db). psycopg2's keeps the connection
        # itself (a cursor factory), so the pool and peewee's psycopg2 calls see no proxy.
        Psycopg2Instrumentor().instrument(tracer_provider=provider)
        SQLite3Instrumentor().instrument(tracer_provider=provider)
        _TRACER = provider.get_tracer("shared.tracing")
        _EXPORTS.append((provider, exporter))
    return _TRACER


def shutdown(timeout: float = SPAN_FLUSH_SECONDS) -> None:
    """Flush the spans still queued (on a graceful exit), waiting at most timeout seconds.

    The SDK's shutdown waits for the export under way and its retries; past timeout, the
    exporter's own shutdown ends them (it closes the channel and stops the retry backoff), and
    the spans not sent are dropped, with a warning.
    """
    for provider, exporter in _EXPORTS:
        flushing = threading.Thread(target=provider.shutdown, name="span-flush", daemon=True)
        flushing.start()
        flushing.join(timeout)
        if flushing.is_alive():
            _LOGGER.warning(
                "spans not exported within %.1fs of the shutdown (collector slow or down): dropped",
                timeout,
            )
            exporter.shutdown()
            flushing.join(timeout)


# ---------------------------------------------------------------------------
# Spans inside a call
# ---------------------------------------------------------------------------


def span(name: str, attributes: dict[str, str]) -> contextlib.AbstractContextManager[Any]:
    """A child of the current span for the block, or nothing when tracing is off.

    An exception leaving the block is recorded on the span, which ends with status ERROR.
    """
    if _TRACER is None:
        return contextlib.nullcontext()
    return _TRACER.start_as_current_span(name, attributes=attributes)


def event(name: str, attributes: dict[str, str | int | float]) -> None:
    """An event on the current span (the call's server span); a no-op when tracing is off."""
    trace.get_current_span().add_event(name, attributes)


class TransactionSpan:
    """The span of one database transaction, current from its BEGIN to its COMMIT or ROLLBACK.

    Written here: OpenTelemetry's DB-API instrumentations trace statements, BEGIN and COMMIT
    among them, but nothing there groups one transaction's statements, and peewee has no
    transaction hook (shared.db calls this from its begin, commit and rollback). The span
    says `transaction.outcome` (commit or rollback) and, rolled back on an exception, its
    class as `error.type`; its status stays unset: a rollback for a client's mistake is the
    transaction working, and a failed statement is marked on its own span.
    """

    def __init__(self, tracer: Tracer, system: str) -> None:
        self._span = tracer.start_span(
            "transaction", kind=SpanKind.INTERNAL, attributes={"db.system": system}
        )
        self._token = otel_context.attach(trace.set_span_in_context(self._span))

    def end(self, outcome: str) -> None:
        """Called in the thread that began it (peewee's transactions are per thread)."""
        self._span.set_attribute("transaction.outcome", outcome)
        error = sys.exception()  # a rollback in an `except` or `__exit__`: what caused it
        if outcome != "commit" and error is not None:
            self._span.set_attribute("error.type", type(error).__qualname__)
        otel_context.detach(self._token)
        self._span.end()


# ---------------------------------------------------------------------------
# The server span
# ---------------------------------------------------------------------------


def _parent(metadata: Iterable[tuple[str, str | bytes]]) -> Any:
    carrier = {key: value for key, value in metadata if key == "traceparent" or key == "tracestate"}
    text = {key: value for key, value in carrier.items() if isinstance(value, str)}
    return _TRACE_CONTEXT.extract(text) if text else None


def traced(tracer: Tracer, method: str, handler: Handler) -> Handler:
    """handler inside a server span named after method, ending with the code the client gets.

    Every kind of handler: one response (all of the services' RPCs), or a response stream
    (health Watch, reflection), whose span lasts as long as the stream.
    """
    _, behavior = behavior_of(handler)
    service, _, name = method.lstrip("/").partition("/")
    span_name = f"{service}/{name}"
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}

    def start(context: Any) -> Any:
        return tracer.start_span(
            span_name,
            context=_parent(context.invocation_metadata()),
            kind=SpanKind.SERVER,
            attributes=attributes,
        )

    def ended(span: Any) -> Callable[[grpc.StatusCode], None]:
        def end(code: grpc.StatusCode) -> None:
            _end(span, code)
            span.end()

        return end

    def current(span: Any) -> Callable[[], contextlib.AbstractContextManager[Any]]:
        # Current while the handler runs; the code is the client's to judge (_end), not an
        # exception's.
        return lambda: trace.use_span(span, record_exception=False, set_status_on_exception=False)

    if handler.response_streaming:

        def streamed(request: Any, context: Any) -> Iterator[Any]:
            span = start(context)  # on the first response asked for, as the handler starts
            yield from stream_to_code(
                lambda: behavior(request, context), context, ended(span), current(span)
            )

        return with_behavior(handler, streamed)

    def recorded(request: Any, context: Any) -> Any:
        span = start(context)
        return run_to_code(lambda: behavior(request, context), context, ended(span), current(span))

    return with_behavior(handler, recorded)


def _end(span: Any, code: grpc.StatusCode) -> None:
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in _SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, code.name))
