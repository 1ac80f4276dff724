"""Idempotency keys (rule 8): the first response to (principal, key) is the only one.

The unique (principal, key) row decides the winner among concurrent repeats: the first
transaction to insert it does the work; the others wait on the index, insert nothing,
and read the response the winner stored before committing.
"""

from __future__ import annotations

import hashlib

from cohort_service.models import IdempotencyRecord, database, utcnow
from shared.compiled import CompiledQuery, unconverted
from shared.errors import InvalidArgument
from shared.metrics import active as active_metrics

KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"


def _is_record(principal, key):
    return (IdempotencyRecord.principal == principal) & (IdempotencyRecord.key == key)


# ON CONFLICT DO NOTHING, not a failing INSERT in a savepoint: two statements fewer, same
# queue (PostgreSQL makes it wait for a concurrent uncommitted insert of the key, then do
# nothing if that one commits; SQLite writers queue on the write lock). Compiled
# (shared.compiled), as the other writes of a patch: building them was ~30 % of its CPU.
_CLAIM = CompiledQuery(
    database,
    lambda principal, key, fingerprint, now: IdempotencyRecord.insert(
        principal=principal, key=key, fingerprint=fingerprint, created_at=now
    ).on_conflict(
        action="NOTHING", conflict_target=[IdempotencyRecord.principal, IdempotencyRecord.key]
    ),
)
_RECORD = CompiledQuery(
    database, lambda principal, key: IdempotencyRecord.select().where(_is_record(principal, key))
)
_REMEMBER = CompiledQuery(
    database,
    lambda response, principal, key: IdempotencyRecord.update(response=unconverted(response)).where(
        _is_record(principal, key)
    ),
)


def fingerprint(request) -> str:
    """What makes two requests "the same": every field but the key, serialized stably."""
    unkeyed = type(request)()
    unkeyed.CopyFrom(request)
    unkeyed.ClearField("idempotency_key")
    return hashlib.sha256(unkeyed.SerializeToString(deterministic=True)).hexdigest()


def claim(principal: str, key: str, request_fingerprint: str) -> bytes | None:
    """None when this call owns the key now; else the stored response of the first call.

    Must run inside the caller's transaction, before anything else is written, so that
    a failing call releases the key with the rest of its work.
    """
    if _CLAIM.raw(principal, key, request_fingerprint, utcnow()).rowcount == 1:
        return None
    record = _RECORD.first(principal, key)
    if record.fingerprint != request_fingerprint:
        raise InvalidArgument(
            "this idempotency_key was already used for a different request",
            [
                (
                    "idempotency_key",
                    f"{key!r} was used before with other fields; "
                    "use a new key for a new request, or repeat the first request unchanged",
                )
            ],
            reason=KEY_REUSED,
        )
    metrics = active_metrics()
    if metrics is not None:
        metrics.idempotency_replays.inc()
    return bytes(record.response)


def remember(principal: str, key: str, response: bytes) -> None:
    """Store the response of the call that claimed the key (same transaction)."""
    _REMEMBER.raw(response, principal, key)
