"""The one server interceptor: access log, authentication, authorisation, request checks, errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import DecodeError
from grpc_status import rpc_status
from opentelemetry import trace

from shared.auth import TokenVerifier, authorization, authorize, bind_principal, unbind_principal
from shared.calls import run_call
from shared.drain import SHUTTING_DOWN, Drain
from shared.errors import InvalidArgument, Unavailable, to_status
from shared.lanes import Lanes
from shared.logs import bind_call, call_fields, unbind_call
from shared.metrics import active as active_metrics
from shared.metrics import rpc_type
from shared.text_checks import RULES, value_violations
from shared.tracing import active as active_tracer
from shared.tracing import traced
from shared.watch import Watches, bind_watch, unbind_watch

_ACCESS_LOG = logging.getLogger("shared.access")
# grpc's classes are generic in its stubs only.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

# Health checks and reflection are open: load balancers and operators call them without tokens.
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


class _Undecodable:
    """Request bytes that did not parse (corrupt, invalid UTF-8, nested too deep).

    grpc itself would answer INTERNAL before any interceptor code runs; carried to the
    handler instead, they are answered INVALID_ARGUMENT, after the caller is authenticated.
    """

    def __init__(self, error: DecodeError) -> None:
        self.error = error


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)  # type: ignore[misc]  # not None: see the return
        except DecodeError as error:
            return _Undecodable(error)

    return deserialize if deserializer is not None else None


def _check_request(request: Any) -> None:
    """What every request must be, whatever its type: decodable, no NUL in text, finite numbers."""
    if isinstance(request, _Undecodable):
        raise InvalidArgument(
            "the request could not be decoded (corrupt data, text that is not UTF-8, or "
            f"messages nested too deep): {request.error}",
            reason="MALFORMED_REQUEST",
        )
    found = value_violations(request)
    if found:
        # One error names every bad value; its reason is the first rule broken.
        broken = dict.fromkeys(rule for rule, _, _ in found)
        raise InvalidArgument(
            "; ".join(RULES[rule] for rule in broken),
            [(path, description) for _, path, description in found],
            reason=found[0][0],
        )


class PlatformInterceptor(grpc.ServerInterceptor):
    """Wraps every unary RPC: verify the token, check the method's permission, map errors."""

    def __init__(
        self,
        domain: str,
        verifier: TokenVerifier,
        database: Any = None,
        drain: Drain | None = None,
        lanes: Lanes | None = None,
        watches: Watches | None = None,
    ) -> None:
        self._domain = domain
        self._verifier = verifier
        self._database = database  # the service's store: each call's connection and deadline
        self._drain = drain
        self._lanes = lanes  # where each call runs, or is refused (None: grpc's one pool)
        self._watches = watches  # the server's open watch streams (None: none are served)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        served = self._serve(method, handler)
        if served is None:
            return None
        # Outermost, so that what is recorded is what the client gets: refusals included.
        metrics = active_metrics()
        if metrics is not None:
            served = metrics.observe(method, rpc_type(handler), served)
        tracer = active_tracer()
        if tracer is not None:  # the span around the metrics: its ids are the logs' too
            served = traced(tracer, method, served)
        return served

    def _serve(self, method: str, handler: Handler) -> Handler | None:
        if method.startswith(OPEN_SERVICES):
            return self._open(method, handler)
        if handler.unary_stream is not None and self._watches is not None:
            watch = grpc.unary_stream_rpc_method_handler(
                self._wrap_watch(method, handler.unary_stream),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
            return watch if self._lanes is None else self._lanes.watch_call(watch)
        if handler.unary_unary is None:
            # Our RPCs are unary, or watches (response streams, above); any other kind would
            # bypass the checks below, so it is not served at all (the client sees
            # UNIMPLEMENTED).
            return None
        behavior = handler.unary_unary
        if self._drain is not None and self._drain.draining:
            # Decided when the call arrives: one accepted before the drain began still runs.
            behavior = self._drain.refuse
        unary = grpc.unary_unary_rpc_method_handler(
            self._wrap(method, behavior),
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
        return unary if self._lanes is None else self._lanes.service_call(unary)

    def _open(self, method: str, handler: Handler) -> Handler:
        """Health and reflection: no token; on their own lanes (shared.lanes)."""
        if self._lanes is None:
            return handler
        if handler.response_streaming and self._drain is not None and self._drain.draining:
            # Health Check still answers (NOT_SERVING); a new stream would outlive the drain.
            return self._lanes.refuse(
                handler,
                Unavailable(
                    "the server is shutting down; retry the call on another instance",
                    reason=SHUTTING_DOWN,
                ),
            )
        return self._lanes.open_call(method, handler)

    def _wrap(self, method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            metadata = context.invocation_metadata()
            # Every line logged while serving the call names it (JSON logs: shared.logs).
            call: dict[str, object] = {"method": method, "principal": None}
            logged_call = bind_call(call)
            try:
                principal = self._authenticated(method, request, context, metadata, call)
                token = bind_principal(principal)
                try:
                    return run_call(self._database, context, lambda: behavior(request, context))
                finally:
                    unbind_principal(token)
            except Exception as exc:  # every failure becomes a Status, here and only here
                status = to_status(exc, self._domain)
                code = _STATUS_CODES.get(status.code, grpc.StatusCode.UNKNOWN)
                context.abort_with_status(rpc_status.to_status(status))
            finally:
                _log_access(method, call, code, started)
                unbind_call(logged_call)

        return guarded

    def _authenticated(
        self,
        method: str,
        request: Any,
        context: grpc.ServicerContext,
        metadata: Any,
        call: dict[str, object],
    ) -> Any:
        """The caller, authenticated and authorised for method, its request checked."""
        call.update(call_fields(context.peer(), metadata, request))
        principal = self._verifier.verify(authorization(metadata))
        call["principal"] = principal.subject
        # A no-op unless tracing is on (shared.tracing): then the call's server span.
        trace.get_current_span().set_attribute("enduser.id", principal.subject)
        authorize(principal, method)
        _check_request(request)
        return principal

    def _wrap_watch(self, method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        """A watch stream (shared.watch): the same checks, then its messages until it ends.

        No run_call: a watch holds no connection or transaction while it waits; it takes a
        connection for each short read (shared.watch.follow).
        """
        watches = self._watches
        assert watches is not None  # only wrapped when the server serves watches

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            metadata = context.invocation_metadata()
            call: dict[str, object] = {"method": method, "principal": None}
            logged_call = bind_call(call)
            watch = None
            outcome = "ENDED"
            try:
                principal = self._authenticated(method, request, context, metadata, call)
                if self._drain is not None and self._drain.draining:
                    self._drain.refuse(request, context)
                watch = watches.open(context, principal)
                token, watching = bind_principal(principal), bind_watch(watch)
                try:
                    yield from behavior(request, context)
                finally:
                    unbind_watch(watching)
                    unbind_principal(token)
                if watch.gone:
                    code, outcome = grpc.StatusCode.CANCELLED, "CLIENT_LEFT"
            except Exception as exc:  # every failure becomes a Status, as for unary calls
                status = to_status(exc, self._domain)
                code = _STATUS_CODES.get(status.code, grpc.StatusCode.UNKNOWN)
                outcome = getattr(exc, "reason", code.name)
                context.abort_with_status(rpc_status.to_status(status))
            except GeneratorExit:  # grpc closed the stream: the client left, or a cut-off
                cut = watch.cut if watch is not None else None
                code = cut.code if cut is not None else grpc.StatusCode.CANCELLED
                outcome = cut.reason if cut is not None else "CLIENT_LEFT"
                raise
            finally:
                if watch is not None:
                    watches.close(watch, outcome)
                _log_access(method, call, code, started)
                unbind_call(logged_call)

        return guarded


def _log_access(
    method: str, call: dict[str, object], code: grpc.StatusCode, started: float
) -> None:
    duration_ms = (time.perf_counter() - started) * 1000
    _ACCESS_LOG.info(
        "rpc method=%s principal=%s code=%s duration_ms=%.2f",
        method,
        call["principal"] or "-",
        code.name,
        duration_ms,
        extra={"code": code.name, "duration_ms": round(duration_ms, 3)},
    )
