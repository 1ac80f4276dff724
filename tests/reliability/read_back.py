"""For each write RPC: read what it wrote back through the read RPCs and compare with its response.

Each function takes (calls, request, response), asserts, and returns True when the write used
up the owner's data (deleted a draft or a report), so that later cases get fresh data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc

from cohort_service.v1 import draft_pb2
from tests.reliability.rpc import DEFINITIONS, invoke, methods_of, request_type


@dataclass
class Calls:
    """The read RPCs of one service, called as the owner; memory outlives one example."""

    channel: grpc.Channel
    service: str
    metadata: list
    memory: dict

    def get(self, name: str, **fields):
        method = next(m for m in methods_of(DEFINITIONS[self.service]) if m.name == name)
        return invoke(self.channel, method, request_type(method)(**fields), self.metadata)

    def assert_not_found(self, name: str, **fields) -> None:
        try:
            self.get(name, **fields)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND, (name, error.details())
        else:
            raise AssertionError(f"{name}({fields}) still finds what was deleted")


ReadBack = Callable[[Calls, object, object], bool]


def _listed(list_name: str, items_field: str) -> ReadBack:
    def read_back(calls: Calls, request, response) -> bool:
        token = ""
        while True:
            page = calls.get(list_name, page_size=1000, page_token=token)
            found = [item for item in getattr(page, items_field) if item.id == response.id]
            if found:
                assert found[0] == response
                return False
            token = page.next_page_token
            assert token, f"{response.id} is not in {list_name}"

    return read_back


def _first_response(calls: Calls, kind: str, key: str, response) -> bool:
    """True for the first success with key; a repeat must get the very same response (rule 8)."""
    first = calls.memory.setdefault((kind, key), response)
    if first is not response:
        assert response == first, "a repeated request got a different response"
        return False
    return True


def _patch(calls: Calls, request, response) -> bool:
    ack = request.HasField("accept")
    if not _first_response(calls, "ack" if ack else "patch", response.idempotency_key, response):
        return False  # a replay: the draft may have changed since the first response
    if ack and not request.accept and not response.HasField("form_state"):
        calls.assert_not_found("GetCohortDraft", draft_id=response.draft_id)
        return False
    live = calls.get("GetCohortDraft", draft_id=response.draft_id)
    if request.soft and not ack:
        assert response.form_state.state == draft_pb2.DRAFT_STATE_DORMANT
        assert response.idempotency_key in [p.idempotency_key for p in live.proposals]
    else:
        assert live == response.form_state
    return False


def _deleted_draft(calls: Calls, request, response) -> bool:
    calls.assert_not_found("GetCohortDraft", draft_id=request.draft_id)
    return True


def _same_report(id_of: Callable, report_of: Callable = lambda r: r) -> ReadBack:
    def read_back(calls: Calls, request, response) -> bool:
        assert calls.get("GetReport", id=id_of(request, response)) == report_of(response)
        return False

    return read_back


def _deleted_report(calls: Calls, request, response) -> bool:
    calls.assert_not_found("GetReport", id=request.id)
    return True


def _discarded(calls: Calls, request, response) -> bool:
    calls.assert_not_found("GetReportDraft", id=request.id)
    return True


def _committed(calls: Calls, request, response) -> bool:
    assert calls.get("GetReport", id=request.id) == response
    calls.assert_not_found("GetReportDraft", id=request.id)
    return True


def _rebased(calls: Calls, request, response) -> bool:
    stored = calls.get("GetReportDraft", id=request.id)
    if request.validate_only:  # nothing written: a draft that was up to date comes back as it is
        assert stored.etag != response.draft.etag or stored == response.draft
    else:
        assert stored == response.draft and not stored.outdated
    return False


def _rolled_back(calls: Calls, request, response) -> bool:
    stored = calls.get("GetReport", id=request.id)
    if request.validate_only:
        assert stored.etag != response.etag
    else:
        assert stored == response
        newest = calls.get("ListReportRevisions", report_id=request.id, page_size=1)
        assert newest.revisions[0].snapshot == response
    return False


def _user_settings(calls: Calls, request, response) -> bool:
    assert calls.get("GetUserReportSettings", report_id=request.report_id) == response
    return False


READ_BACK: dict[str, dict[str, ReadBack]] = {
    "cohort": {
        "CreateDepartment": _listed("ListDepartments", "departments"),
        "CreateSimulation": _listed("ListSimulations", "simulations"),
        "CreateProfile": _listed("ListProfiles", "profiles"),
        "CreateFlag": _listed("ListFlags", "flags"),
        "PatchCohortDraft": _patch,
        "DeleteCohortDraft": _deleted_draft,
    },
    "report": {
        "CreateReport": _same_report(lambda q, r: r.id),
        "UpdateReport": _same_report(lambda q, r: r.id),
        "EditReport": _same_report(lambda q, r: r.id),
        "PutReportDraft": _same_report(lambda q, r: r.report.id, lambda r: r.report),
        "DeleteReport": _deleted_report,
        "DiscardReportDraft": _discarded,
        "CommitReportDraft": _committed,
        "UpdateUserReportSettings": _user_settings,
        "RebaseReportDraft": _rebased,
        "RollbackReport": _rolled_back,
    },
}
READ_ONLY: dict[str, set[str]] = {
    "cohort": {
        "ListDepartments",
        "ListSimulations",
        "ListProfiles",
        "ListFlags",
        "GetCohortDraft",
        "ListCohortDrafts",
        "WatchCohortDrafts",
    },
    "report": {
        "GetReport",
        "ListReports",
        "GetReportDraft",
        "ListReportActivities",
        "GetUserReportSettings",
        "DiffReportDraft",
        "ListReportRevisions",
        "GetReportRevision",
        "WatchReport",
    },
}
