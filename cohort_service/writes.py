"""The cohort writes' validate_only (AIP-163), by shared.writes.

PatchCohortDraft's idempotency_key is its request_id under the seed's name: patches.py claims
it itself (the server picks a key when none is given, and an ack decides a proposal instead).
"""

from __future__ import annotations

from cohort_service.models import database
from shared.writes import Writes

# Declares a servicer method's options: @WRITE(validate_only=True).
WRITE = Writes(database)
