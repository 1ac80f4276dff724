"""Domain errors raised by servicers, and their one mapping to google.rpc.Status."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import grpc
import peewee
import psycopg2
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

_LOGGER = logging.getLogger(__name__)


class ServiceError(Exception):
    """An error the caller can act on; carries its gRPC code and machine-readable reason."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        violations: Iterable[tuple[str, str]] = (),
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.violations = list(violations)
        self.reason = reason or self.code.name
        self.metadata = dict(metadata or {})


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(ServiceError):
    code = grpc.StatusCode.ABORTED


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class OutOfRange(ServiceError):
    code = grpc.StatusCode.OUT_OF_RANGE


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Internal(ServiceError):
    """Only for the mapping below: servicers never raise it, unexpected exceptions become it."""

    code = grpc.StatusCode.INTERNAL


class Violations:
    """Collects every bad field of a request so that one error can name them all."""

    def __init__(self) -> None:
        self._items: list[tuple[str, str]] = []

    def add(self, field: str, description: str) -> None:
        self._items.append((field, description))

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def raise_if_any(
        self, message: str = "the request has invalid fields", *, reason: str = "INVALID_ARGUMENT"
    ) -> None:
        if self._items:
            raise InvalidArgument(message, self._items, reason=reason)


# ---------------------------------------------------------------------------
# Mapping to google.rpc.Status: the only place that decides a status code.
# ---------------------------------------------------------------------------

_INTERNAL_MESSAGE = "internal error; the failure has been logged"


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


# SQLSTATEs (PostgreSQL appendix A). Class 08 is "connection exception"; 57P01-57P03 are the
# server shutting down, crashing or not yet accepting connections: what a restart looks like.
_CONNECTION_CLASS = "08"
_SERVER_GOING_AWAY = frozenset({"57P01", "57P02", "57P03"})
# The transaction was rolled back for another one's sake: running it again is safe.
_CONTENTION = frozenset({"40001", "40P01", "55P03"})  # serialization, deadlock, lock timeout
_STATEMENT_CANCELLED = "57014"  # statement_timeout (bound to the call's deadline) or a cancel


def driver_error(exc: BaseException) -> BaseException:
    """The DB-API driver's exception under peewee's wrappers (each keeps the one below as `orig`).

    peewee may wrap twice: its BEGIN wraps a connect that already wrapped the driver's error.
    """
    while isinstance(getattr(exc, "orig", None), BaseException):
        exc = exc.orig  # type: ignore[attr-defined]  # checked just above
    return exc


def database_failure(exc: BaseException) -> str | None:
    """ "unavailable", "contention", "cancelled", or None when exc is no such database failure.

    Decided by SQLSTATE and driver class, not by message text (which is localised by the
    server's lc_messages). psycopg2 gives an error without SQLSTATE only when libpq itself
    failed: the server refused the connection, or the link broke mid-call.
    """
    driver = driver_error(exc)
    if isinstance(driver, psycopg2.Error):
        code = driver.pgcode
        if code is None:
            return (
                "unavailable"
                if isinstance(driver, psycopg2.OperationalError | psycopg2.InterfaceError)
                else None
            )
        if code.startswith(_CONNECTION_CLASS) or code in _SERVER_GOING_AWAY:
            return "unavailable"
        if code in _CONTENTION:
            return "contention"
        return "cancelled" if code == _STATEMENT_CANCELLED else None
    if isinstance(driver, sqlite3.OperationalError):
        # SQLite's busy_timeout ran out: another process holds the write lock.
        return "contention" if "locked" in str(driver) else None
    return None


_DATABASE_FAILURES: dict[str, Callable[[], ServiceError]] = {
    "unavailable": lambda: Unavailable(
        "the database is unavailable (connection refused or lost); retry with backoff",
        reason="DATABASE_UNAVAILABLE",
    ),
    "contention": lambda: Aborted(
        "the transaction was aborted by concurrent writes (lock timeout, deadlock or "
        "serialization failure) and nothing was changed; retry with backoff",
        reason="DATABASE_CONTENTION",
    ),
    "cancelled": lambda: DeadlineExceeded(
        "a database statement ran past the call's deadline and was cancelled; nothing was changed",
        reason="DEADLINE_EXCEEDED",
    ),
}


def to_status(exc: BaseException, domain: str) -> status_pb2.Status:
    """The google.rpc.Status a client sees for exc; unexpected errors reveal nothing."""
    if isinstance(exc, peewee.DoesNotExist):
        # peewee's own message quotes the SQL, which a client must never see.
        exc = NotFound("the requested resource does not exist")
    elif (failure := database_failure(exc)) is not None:
        exc = _DATABASE_FAILURES[failure]()
    if not isinstance(exc, ServiceError):
        _LOGGER.error("unexpected error", exc_info=exc)
        exc = Internal(_INTERNAL_MESSAGE)
    metadata = {key: _shorten(value, _MAX_TEXT) for key, value in exc.metadata.items()}
    details = [
        _pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain=domain, metadata=metadata))
    ]
    if exc.violations:
        details.append(_pack(_bad_request(exc.violations)))
    return status_pb2.Status(
        code=getattr(code_pb2, exc.code.name), message=_message(exc), details=details
    )


# The status travels in response trailers, and gRPC clients refuse trailers past 8-16 KiB by
# default: the client then sees RESOURCE_EXHAUSTED and loses the error. A request with a thousand
# bad items, or a 100,000-character value quoted back, must still get its error, so texts are
# shortened and violations past a budget are summed up in a last one.
_MAX_TEXT = 160  # characters of a field path, description or ErrorInfo value
_MAX_MESSAGE = 200
_VIOLATIONS_BUDGET = 2000  # bytes of serialized BadRequest
# The message with its summary of violations (what `buf curl` and grpcurl show first: their
# BadRequest is base64). grpc-message is percent-encoded, up to 3 characters per byte: bounded
# in UTF-8 bytes, so the whole trailer block stays well inside 8 KiB (about 6 KB at worst).
_SUMMARY_PAIRS = 3
_SUMMARY_FIELD, _SUMMARY_TEXT = 60, 120  # characters of a field path, of a description
_MAX_MESSAGE_BYTES = 512


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shorten_bytes(text: str, limit: int) -> str:
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - len("…".encode())].decode(errors="ignore") + "…"


def _message(exc: ServiceError) -> str:
    """exc's message, then its first violations as `field: problem` pairs and how many more.

    The first pair is always there (shortened if need be); the next ones only while the
    message stays within its byte budget.
    """
    head = _shorten(exc.message, _MAX_MESSAGE)
    if not exc.violations:
        return _shorten_bytes(head, _MAX_MESSAGE_BYTES)
    pairs = [
        f"{_shorten(field, _SUMMARY_FIELD)}: " * bool(field) + _shorten(text, _SUMMARY_TEXT)
        for field, text in exc.violations[:_SUMMARY_PAIRS]
    ]
    for shown in range(len(pairs), 0, -1):
        more = len(exc.violations) - shown
        message = f"{head}: {'; '.join(pairs[:shown])}" + (f" (and {more} more)" if more else "")
        if len(message.encode()) <= _MAX_MESSAGE_BYTES or shown == 1:
            break
    if len(message.encode()) > _MAX_MESSAGE_BYTES:  # the head gives way to the first pair
        tail = message[len(head) :]
        head = _shorten_bytes(head, max(_MAX_MESSAGE_BYTES - len(tail.encode()), 40))
        message = _shorten_bytes(head + tail, _MAX_MESSAGE_BYTES)
    return message


def _bad_request(violations: list[tuple[str, str]]) -> error_details_pb2.BadRequest:
    bad_request = error_details_pb2.BadRequest()
    for index, (field, text) in enumerate(violations):
        if bad_request.ByteSize() > _VIOLATIONS_BUDGET:
            bad_request.field_violations.add(
                field="",
                description=f"{len(violations) - index} more invalid fields are not listed; "
                "fix the ones above and retry to see them",
            )
            break
        bad_request.field_violations.add(
            field=_shorten(field, _MAX_TEXT), description=_shorten(text, _MAX_TEXT)
        )
    return bad_request
