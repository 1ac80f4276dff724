"""Idempotency keys (rule 8): shared.idempotency on cohort-service's own table."""

from __future__ import annotations

from cohort_service.models import IdempotencyRecord
from shared.idempotency import RequestLog

KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"

KEYS = RequestLog(IdempotencyRecord, "idempotency_key", KEY_REUSED)
