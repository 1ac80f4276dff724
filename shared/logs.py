"""Log lines as text (the default) or JSON, and the fields a call adds to the lines it logs.

Only the command line installs handlers (shared.cli.configure_logging); this module makes them.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# The call being served on this thread, as fields for every line it logs (None: no call).
_CALL: contextvars.ContextVar[dict[str, object] | None] = contextvars.ContextVar(
    "logged_call", default=None
)
# OpenTelemetry's own W3C parser (version, all-zero ids, lengths): the tracing will use it too.
_TRACE_CONTEXT = TraceContextTextMapPropagator()
# Top-level string fields of a request that name it, logged with the call when set.
_REQUEST_ID_FIELDS = ("idempotency_key", "request_id")
_MAX_ID_LENGTH = 200  # a request refused for a longer id is logged too: bound what a line quotes
_ID_FIELDS_BY_TYPE: dict[Descriptor, tuple[str, ...]] = {}

# Tokens never reach a record (metadata is not logged); this is the backstop for one quoted
# by an exception or put by a client into a logged field. A JWT's header is a JSON object, so
# its base64url starts with `eyJ` (`{"`).
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_REDACTED = "[token redacted]"


# ---------------------------------------------------------------------------
# The fields of a call
# ---------------------------------------------------------------------------


def call_fields(
    peer: str, metadata: Iterable[tuple[str, str | bytes]], request: object
) -> dict[str, object]:
    """What every line logged while serving a call says about it, besides method and principal:
    the peer, the caller's trace context, and the ids the request carries."""
    fields: dict[str, object] = {"peer": peer}
    fields.update(_trace_ids(metadata))
    if isinstance(request, Message):
        descriptor = cast(Descriptor, request.DESCRIPTOR)  # the stubs also admit upb's type
        for name in _id_fields(descriptor):
            value = getattr(request, name)
            if value:
                fields[name] = value[:_MAX_ID_LENGTH]
    return fields


def bind_call(fields: dict[str, object]) -> contextvars.Token[dict[str, object] | None]:
    return _CALL.set(fields)


def unbind_call(token: contextvars.Token[dict[str, object] | None]) -> None:
    _CALL.reset(token)


def _trace_ids(metadata: Iterable[tuple[str, str | bytes]]) -> dict[str, str]:
    """trace_id and span_id of the call's server span when tracing is on (shared.tracing),
    else of a valid W3C `traceparent` (the caller's span), else nothing."""
    own = trace.get_current_span().get_span_context()
    if own.is_valid:
        return {
            "trace_id": trace.format_trace_id(own.trace_id),
            "span_id": trace.format_span_id(own.span_id),
        }
    values = [value for key, value in metadata if key == "traceparent"]
    if len(values) != 1 or not isinstance(values[0], str):
        return {}
    extracted = _TRACE_CONTEXT.extract({"traceparent": values[0]})
    span = trace.get_current_span(extracted).get_span_context()
    if not span.is_valid:
        return {}
    return {
        "trace_id": trace.format_trace_id(span.trace_id),
        "span_id": trace.format_span_id(span.span_id),
    }


def _id_fields(descriptor: Descriptor) -> tuple[str, ...]:
    names = _ID_FIELDS_BY_TYPE.get(descriptor)
    if names is None:
        names = tuple(
            name
            for name in _REQUEST_ID_FIELDS
            if (field := descriptor.fields_by_name.get(name)) is not None
            and field.type == FieldDescriptor.TYPE_STRING
            and not field.is_repeated
        )
        _ID_FIELDS_BY_TYPE[descriptor] = names
    return names


class _CallFields(logging.Filter):
    """Adds the fields of the call being served to each record logged while serving it."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _CALL.get()
        if fields is not None:
            for key, value in fields.items():
                record.__dict__.setdefault(key, value)
        return True


# ---------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------


class _JsonLines(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class _Redacting(logging.Formatter):
    """Another formatter's line, with any bearer token in it replaced."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self._formatter = formatter

    def format(self, record: logging.LogRecord) -> str:
        return _JWT.sub(_REDACTED, self._formatter.format(record))


def log_handler(
    stream: IO[str], log_format: str, text_format: str = TEXT_FORMAT, *, redact: bool = True
) -> logging.Handler:
    """A handler writing to stream: text lines in text_format, or one JSON object a line.

    A JSON line has time (ISO 8601, UTC), level, logger, message, traceback when the record
    carries an exception, the fields passed as `extra`, and those of the call being served.
    """
    handler = logging.StreamHandler(stream)
    formatter: logging.Formatter
    if log_format == "json":
        formatter = _JsonLines(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={
                "asctime": "time",
                "levelname": "level",
                "name": "logger",
                "exc_info": "traceback",
            },
        )
        handler.addFilter(_CallFields())
    else:
        formatter = logging.Formatter(text_format)
    handler.setFormatter(_Redacting(formatter) if redact else formatter)
    return handler
