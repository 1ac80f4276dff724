"""Domain errors raised by servicers, and their one mapping to google.rpc.Status."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import grpc
import peewee
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

    def __iter__(self):
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


def _pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _database_unavailable(exc: peewee.OperationalError | peewee.InterfaceError) -> bool:
    # A lost or refused connection is retryable; "database is locked" past the busy
    # timeout is contention, also retryable. Anything else operational is our bug.
    text = str(exc).lower()
    return any(
        hint in text
        for hint in ("could not connect", "connection", "server closed", "terminat", "locked")
    )


def to_status(exc: BaseException, domain: str) -> status_pb2.Status:
    """The google.rpc.Status a client sees for exc; unexpected errors reveal nothing."""
    if isinstance(exc, peewee.DoesNotExist):
        # peewee's own message quotes the SQL, which a client must never see.
        exc = NotFound("the requested resource does not exist")
    elif isinstance(exc, peewee.OperationalError | peewee.InterfaceError) and _database_unavailable(
        exc
    ):
        exc = Unavailable(
            "the database is unavailable; retry with backoff", reason="DATABASE_UNAVAILABLE"
        )
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
        code=getattr(code_pb2, exc.code.name),
        message=_shorten(exc.message, _MAX_MESSAGE),
        details=details,
    )


# The status travels in response trailers, and gRPC clients refuse trailers past 8-16 KiB by
# default: the client then sees RESOURCE_EXHAUSTED and loses the error. A request with a thousand
# bad items, or a 100,000-character value quoted back, must still get its error, so texts are
# shortened and violations past a budget are summed up in a last one.
_MAX_TEXT = 160  # characters of a field path, description or ErrorInfo value
_MAX_MESSAGE = 200
_VIOLATIONS_BUDGET = 2000  # bytes of serialized BadRequest


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
