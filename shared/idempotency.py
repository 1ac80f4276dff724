"""Remembered first responses: AIP-155 request ids and the cohort seed's idempotency keys.

One implementation serves report-service's `request_id` (every write, see shared.writes) and
cohort-service's `idempotency_key` (PatchCohortDraft): the first successful response to a
principal's key is stored in the call's own transaction, and a repeat of the same request
gets it back. Each service keeps the records in a table of its own (a RequestRecord subclass).

The unique (principal, key) row decides the winner among concurrent repeats: the first
transaction to insert it does the work; the others wait on the index, insert nothing, and
read the response the winner stored before committing. A call that fails rolls its claim
back with the rest of its work, so only successes are remembered. Keys are per principal:
another principal's record of the same key is never read, waited on or replaced.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import peewee
from google.protobuf.message import Message

from shared.budget import RESOURCE_MAX_BYTES, check_size
from shared.clock import utcnow
from shared.compiled import CompiledQuery, unconverted
from shared.errors import InvalidArgument
from shared.metrics import active as active_metrics

# What a remembered response may weigh: a resource (shared.budget) with its output-only
# fields (ids, owner, links, times), which the resource budget leaves out. Every response
# fits by construction; the check keeps a record from ever outgrowing it.
RECORD_MAX_BYTES = RESOURCE_MAX_BYTES + 64 * 1024
# The request's fields that do not make two requests different.
NOT_FINGERPRINTED = ("request_id", "idempotency_key", "validate_only")


class RequestRecord(peewee.Model):
    """The first response to (principal, key). Abstract: a service subclasses it with its
    database and table name; its migration creates the table with these columns."""

    principal = peewee.TextField()
    key = peewee.CharField(max_length=200)
    fingerprint = peewee.CharField(max_length=64)  # sha256 of the request (see fingerprint)
    response = peewee.BlobField(null=True)  # set before the claiming transaction commits
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        # (principal, key): one winner under races; created_at: the purge's oldest first.
        indexes = ((("principal", "key"), True), (("created_at",), False))


def fingerprint(request: Message, scope: str = "") -> str:
    """What makes two requests "the same": every field but the key and validate_only,
    serialized stably, after scope (the RPC, when one key space serves several)."""
    keyless = type(request)()
    keyless.CopyFrom(request)
    for name in NOT_FINGERPRINTED:
        if name in keyless.DESCRIPTOR.fields_by_name:
            keyless.ClearField(name)
    return hashlib.sha256(
        scope.encode() + keyless.SerializeToString(deterministic=True)
    ).hexdigest()


def uuid_key(field: str, raw: str) -> str:
    """raw as a request_id (AIP-155: a UUID in its 36-character form), lower-cased; else
    INVALID_ARGUMENT naming field."""
    try:
        canonical = str(uuid.UUID(raw))
    except ValueError:
        canonical = ""
    if canonical != raw.lower():  # uuid.UUID also reads braces, urn: and bare hex
        raise InvalidArgument(
            f"{field} must be a UUID",
            [(field, "must be a UUID in its 36-character form, e.g. " + str(uuid.UUID(int=0)))],
        )
    return canonical


class RequestLog:
    """Claim, remember and purge the records of one RequestRecord table."""

    def __init__(self, model: type[RequestRecord], field: str, reused_reason: str) -> None:
        self.model = model
        self.field = field  # the request field holding the key, named in errors
        self.reused_reason = reused_reason
        database = model._meta.database

        def is_record(principal: Any, key: Any) -> Any:
            return (model.principal == principal) & (model.key == key)

        # ON CONFLICT DO NOTHING, not a failing INSERT in a savepoint: two statements fewer,
        # same queue (PostgreSQL makes it wait for a concurrent uncommitted insert of the key,
        # then do nothing if that one commits; SQLite writers queue on the write lock).
        # Compiled (shared.compiled): building them was ~30 % of a cohort patch's CPU.
        self._claim = CompiledQuery(
            database,
            lambda principal, key, print_, now: model.insert(
                principal=principal, key=key, fingerprint=print_, created_at=now
            ).on_conflict(action="NOTHING", conflict_target=[model.principal, model.key]),
        )
        self._record = CompiledQuery(
            database,
            lambda principal, key: model.select(model.fingerprint, model.response).where(
                is_record(principal, key)
            ),
        )
        self._remember = CompiledQuery(
            database,
            lambda response, principal, key: model.update(response=unconverted(response)).where(
                is_record(principal, key)
            ),
        )

    def claim(self, principal: str, key: str, request_fingerprint: str) -> bytes | None:
        """None when this call owns the key now; else the stored response of the first call.

        Must run inside the caller's transaction, before anything else is written, so that a
        failing call releases the key with the rest of its work. INVALID_ARGUMENT (the
        reused reason, naming the field) when the key was used for another request.
        """
        if self._claim.raw(principal, key, request_fingerprint, utcnow()).rowcount == 1:
            return None
        record = self._record.first(principal, key)
        if record.fingerprint != request_fingerprint:
            raise InvalidArgument(
                f"this {self.field} was already used for a different request",
                [
                    (
                        self.field,
                        f"{key!r} was used before with another request; use a new "
                        f"{self.field} for a new request, or repeat the first request unchanged",
                    )
                ],
                reason=self.reused_reason,
            )
        metrics = active_metrics()
        if metrics is not None:
            metrics.idempotency_replays.inc()
        return bytes(record.response)

    def remember(self, principal: str, key: str, response: bytes) -> None:
        """Store the response of the call that claimed the key (same transaction);
        INVALID_ARGUMENT, rolling the call back, if it is over RECORD_MAX_BYTES."""
        check_size(self.field, "the response to remember", len(response), RECORD_MAX_BYTES)
        self._remember.raw(response, principal, key)

    def purge(
        self,
        now: datetime,
        ttl: float,
        limit: int,
        kept: Callable[[type[RequestRecord]], Any] | None = None,
    ) -> int:
        """Delete up to limit records older than ttl seconds, oldest first; return how many.

        On PostgreSQL the rows are claimed FOR UPDATE SKIP LOCKED, so that replicas purging
        at once share the rows instead of deleting (or waiting on) the same ones; SQLite runs
        one writer at a time. kept(model): a condition on the records to keep regardless.
        """
        model = self.model
        database = model._meta.database
        oldest = model.select(model.id).where(model.created_at <= now - timedelta(seconds=ttl))
        if kept is not None:
            oldest = oldest.where(~kept(model))
        oldest = oldest.order_by(model.created_at).limit(limit)
        if database.for_update:
            oldest = oldest.for_update(skip_locked=True)
        with database.atomic():
            ids = [row_id for (row_id,) in oldest.tuples()]
            if ids:
                model.delete().where(model.id.in_(ids)).execute()
        return len(ids)
