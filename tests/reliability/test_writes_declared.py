"""Every write RPC of both services takes validate_only, and every report write request_id: the
request has the field and the servicer method declares it (shared.writes).

The writes are those with a read-back in tests/reliability/read_back.py, which
test_every_write_method_has_a_read_back keeps complete; so a new write RPC (RollbackReport,
RebaseReportDraft, ...) fails here until it is declared.
"""

from __future__ import annotations

import pytest

from cohort_service.servicer_catalog import CohortCatalogServicer
from cohort_service.servicer_drafts import CohortDraftServicer
from report_service.servicer import ReportServicer
from shared.writes import WriteOptions
from tests.reliability.read_back import READ_BACK
from tests.reliability.rpc import DEFINITIONS, methods_of

SERVICERS = {"cohort": (CohortCatalogServicer, CohortDraftServicer), "report": (ReportServicer,)}
# cohort-service's retry key is PatchCohortDraft's idempotency_key, older than AIP-155's name.
REQUEST_IDS = {"cohort": False, "report": True}
WRITES = [
    pytest.param(service, method, id=method.name)
    for service in sorted(DEFINITIONS)
    for method in methods_of(DEFINITIONS[service])
    if method.name in READ_BACK[service]
]


@pytest.mark.parametrize(("service", "method"), WRITES)
def test_every_write_rpc_takes_validate_only_and_report_writes_request_id(service, method):
    fields = method.input_type.fields_by_name
    assert "validate_only" in fields, f"{method.full_name}: its request has no validate_only"
    if REQUEST_IDS[service]:
        assert "request_id" in fields, f"{method.full_name}: its request has no request_id"
    servicer = next(s for s in SERVICERS[service] if hasattr(s, method.name))
    declared = getattr(getattr(servicer, method.name), "write_options", None)
    expected = WriteOptions(request_id=REQUEST_IDS[service], validate_only=True)
    assert declared == expected, (
        f"{servicer.__name__}.{method.name} is declared {declared}: add "
        f"@WRITE(request_id={expected.request_id}, validate_only=True) (shared.writes)"
    )
