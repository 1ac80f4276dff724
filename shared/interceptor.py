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
    ) -> None:
        self._domain = domain
        self._verifier = verifier
        self._database = database  # the service's store: each call's connection and deadline
        self._drain = drain
        self._lanes = lanes  # where each call runs, or is refused (None: grpc's one pool)

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
        if handler.unary_unary is None:
            # Every RPC of ours is unary; a streaming one would bypass the checks below,
            # so it is not served at all (the client sees UNIMPLEMENTED).
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
                call.update(call_fields(context.peer(), metadata, request))
                principal = self._verifier.verify(authorization(metadata))
                call["principal"] = principal.subject
                # A no-op unless tracing is on (shared.tracing): then the call's server span.
                trace.get_current_span().set_attribute("enduser.id", principal.subject)
                authorize(principal, method)
                _check_request(request)
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
                duration_ms = (time.perf_counter() - started) * 1000
                _ACCESS_LOG.info(
                    "rpc method=%s principal=%s code=%s duration_ms=%.2f",
                    method,
                    call["principal"] or "-",
                    code.name,
                    duration_ms,
                    extra={"code": code.name, "duration_ms": round(duration_ms, 3)},
                )
                unbind_call(logged_call)

        return guarded
