"""Idempotency keys (rule 8): the first response to (principal, key) is the only one.

The unique (principal, key) row decides the winner among concurrent repeats: the first
transaction to insert it does the work; the others wait on the index, fail to insert,
and read the response the winner stored before committing.
"""

from __future__ import annotations

import hashlib

import peewee

from cohort_service.models import IdempotencyRecord, database
from shared.errors import InvalidArgument

KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"


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
    try:
        with database.atomic():  # a savepoint: the conflict must not abort the outer transaction
            IdempotencyRecord.insert(
                principal=principal, key=key, fingerprint=request_fingerprint
            ).execute()
        return None
    except peewee.IntegrityError:
        pass
    record = IdempotencyRecord.get(
        (IdempotencyRecord.principal == principal) & (IdempotencyRecord.key == key)
    )
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
    return bytes(record.response)


def remember(principal: str, key: str, response: bytes) -> None:
    """Store the response of the call that claimed the key (same transaction)."""
    IdempotencyRecord.update(response=response).where(
        (IdempotencyRecord.principal == principal) & (IdempotencyRecord.key == key)
    ).execute()
