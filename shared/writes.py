"""How a write RPC takes part in `request_id` (AIP-155) and `validate_only` (AIP-163).

One declaration on the servicer method, the request message having the field(s):

    WRITE = Writes(database, request_log)          # per service (shared.idempotency)

    @WRITE(request_id=True, validate_only=True)
    def CommitReportDraft(self, request, context): ...

- request_id: a call carrying one claims (principal, request_id) first, in a transaction
  that wraps the method's own (its `database.atomic()` becomes a savepoint), and stores the
  response before committing; a repeat of the same request returns that response without
  running the method (shared.idempotency). Without a request_id nothing is added.
- validate_only: a call with it set runs the method, request_id claim included, inside a
  transaction that is then rolled back, and answers what the method answered: every check
  and driver hook the call makes runs, nothing stays. The rollback is outermost, whatever the
  order of the options, so that no claim or record survives it.

A test walks every write RPC of both services' descriptors and fails until each request
field is declared here (tests/reliability/test_writes_declared.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import peewee
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message

from shared.auth import current_principal
from shared.idempotency import RequestLog, fingerprint, uuid_key

Method = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class WriteOptions:
    """What a servicer method was declared with (read by the test that checks declarations)."""

    request_id: bool
    validate_only: bool


class _RolledBack(Exception):
    """Carries a validate_only call's answer out of the transaction it rolls back."""

    def __init__(self, response: Message) -> None:
        super().__init__()
        self.response = response


class Writes:
    """The declaration of one service's write RPCs (see the module docstring)."""

    def __init__(self, database: peewee.DatabaseProxy, requests: RequestLog | None = None):
        self._database = database
        self._requests = requests

    def __call__(
        self, *, request_id: bool = False, validate_only: bool = False
    ) -> Callable[[Method], Method]:
        if request_id and self._requests is None:
            raise TypeError("request_id needs a RequestLog: Writes(database, requests)")

        def declare(method: Method) -> Method:
            run = method
            if request_id:
                run = self._once(run)
            if validate_only:
                run = self._rolled_back(run)
            run.write_options = WriteOptions(request_id, validate_only)  # type: ignore[attr-defined]
            return run

        return declare

    def _once(self, method: Method) -> Method:
        requests = self._requests
        assert requests is not None  # checked by __call__

        @functools.wraps(method)
        def once(servicer: Any, request: Any, context: Any) -> Any:
            if not request.request_id:
                return method(servicer, request, context)
            key = uuid_key("request_id", request.request_id)
            rpc, response_type = _rpc_of(request, method.__name__)
            principal = current_principal().subject
            with self._database.atomic():
                stored = requests.claim(principal, key, fingerprint(request, rpc))
                if stored is not None:
                    return response_type.FromString(stored)
                response = method(servicer, request, context)
                requests.remember(principal, key, response.SerializeToString(deterministic=True))
                return response

        return once

    def _rolled_back(self, method: Method) -> Method:
        @functools.wraps(method)
        def rolled_back(servicer: Any, request: Any, context: Any) -> Any:
            if not request.validate_only:
                return method(servicer, request, context)
            try:
                with self._database.atomic():  # the method's own transaction nests in it
                    raise _RolledBack(method(servicer, request, context))
            except _RolledBack as answered:
                return answered.response

        return rolled_back


@functools.cache
def _lookup(request_name: str, method_name: str) -> tuple[str, type[Message]]:
    pool = descriptor_pool.Default()
    request = pool.FindMessageTypeByName(request_name)
    for service in request.file.services_by_name.values():
        method = service.methods_by_name.get(method_name)
        if method is not None and method.input_type is request:
            return f"/{service.full_name}/{method.name}", message_factory.GetMessageClass(
                method.output_type
            )
    raise LookupError(f"no RPC {method_name} takes {request_name}")


def _rpc_of(request: Message, method_name: str) -> tuple[str, type[Message]]:
    """The full name of the RPC method_name taking request, and its response class: the
    fingerprint's scope (one request_id is one request of one RPC) and what a replay parses."""
    return _lookup(request.DESCRIPTOR.full_name, method_name)
