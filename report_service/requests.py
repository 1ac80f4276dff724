"""The report writes' request_id (AIP-155) and validate_only (AIP-163), by shared.writes."""

from __future__ import annotations

from report_service.models import RequestRecord, database
from shared.idempotency import RequestLog
from shared.writes import Writes

REQUEST_ID_REUSED = "REQUEST_ID_REUSED"

REQUEST_IDS = RequestLog(RequestRecord, "request_id", REQUEST_ID_REUSED)
# Declares a servicer method's options: @WRITE(request_id=True, validate_only=True).
WRITE = Writes(database, REQUEST_IDS)
