"""Real data owned by one principal, set up through the RPCs, and valid requests that address it.

The authorisation matrix and the fuzzer both start from here: a request that the owner may
make, so that refusing it proves something and mutating it reaches deep into the servicer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
from google.protobuf import field_mask_pb2, struct_pb2, timestamp_pb2

from cohort_service.v1 import catalog_pb2, catalog_service_pb2, draft_pb2, draft_service_pb2
from report_service.v1 import report_pb2, report_service_pb2
from tests.reliability.rpc import DEFINITIONS, invoke, methods_of

OWNER = "user:alice"
OTHER = "user:bob"


@dataclass
class World:
    """Ids of what the owner set up: `world.ids["draft"]`, ..."""

    service: str
    tag: str
    ids: dict[str, str] = field(default_factory=dict)


Builder = Callable[[World], object]
OK = grpc.StatusCode.OK


def _method(service: str, name: str):
    return next(m for m in methods_of(DEFINITIONS[service]) if m.name == name)


def _struct(value: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def _timestamp(year: int, month: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime(year, month, 1, tzinfo=UTC))
    return stamp


# ---------------------------------------------------------------------------
# cohort-service
# ---------------------------------------------------------------------------


def _cohort_setup(channel: grpc.Channel, metadata, tag: str) -> World:
    world = World("cohort", tag)

    def call(name, request):
        return invoke(channel, _method("cohort", name), request, metadata)

    ids = world.ids
    for kind, request_type in (
        ("department", catalog_service_pb2.CreateDepartmentRequest),
        ("simulation", catalog_service_pb2.CreateSimulationRequest),
        ("profile", catalog_service_pb2.CreateProfileRequest),
    ):
        ids[kind] = call(f"Create{kind.title()}", request_type(name=f"{kind} {tag}")).id
    flag = call(
        "CreateFlag",
        catalog_service_pb2.CreateFlagRequest(
            key=f"tier_{tag}",
            type=catalog_pb2.FLAG_TYPE_SINGLE_SELECT,
            options=[catalog_pb2.FlagOption(value=v, label=v.title()) for v in ("gold", "silver")],
        ),
    )
    ids["flag_option"] = flag.options[0].id
    created = call(
        "PatchCohortDraft",
        draft_service_pb2.PatchCohortDraftRequest(
            name=f"Cohort {tag}",
            description="A cohort the other principal must never see",
            flag_ids=[ids["flag_option"]],
            active=True,
            department_ids=[ids["department"]],
            simulation_ids=[ids["simulation"]],
            profile_ids=[ids["profile"]],
            simulation_positions=[
                draft_pb2.DraftSimulationPositionValue(
                    simulation_id=ids["simulation"], title="Lead", description="runs it"
                )
            ],
            simulation_availability=[
                draft_pb2.DraftSimulationAvailabilityValue(
                    simulation_id=ids["simulation"],
                    start_time=_timestamp(2026, 1),
                    end_time=_timestamp(2026, 2),
                )
            ],
            profile_personas=[
                draft_pb2.DraftProfilePersonaValue(profile_id=ids["profile"], persona="Closer")
            ],
            idempotency_key=f"create-{tag}",
        ),
    )
    ids["draft"] = created.draft_id
    ids["position"] = created.form_state.simulation_positions[0].id
    ids["department_item"] = created.form_state.departments[0].id
    ids["proposal_key"] = f"soft-{tag}"
    call(
        "PatchCohortDraft",
        draft_service_pb2.PatchCohortDraftRequest(
            draft_id=ids["draft"],
            description="staged, not yet accepted",
            soft=True,
            idempotency_key=ids["proposal_key"],
        ),
    )
    return world


def _unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:12]}"


_COHORT_OWNED: dict[str, tuple[tuple[Builder, grpc.StatusCode], ...]] = {
    "PatchCohortDraft": (
        (
            lambda w: draft_service_pb2.PatchCohortDraftRequest(
                draft_id=w.ids["draft"],
                name="renamed",
                department_ids=[w.ids["department"]],
                update_mask=field_mask_pb2.FieldMask(paths=["pending_ids"]),
            ),
            OK,
        ),
        (
            lambda w: draft_service_pb2.PatchCohortDraftRequest(
                draft_id=w.ids["draft"], idempotency_key=w.ids["proposal_key"], accept=True
            ),
            OK,
        ),
        (
            lambda w: draft_service_pb2.PatchCohortDraftRequest(
                input_draft_id=w.ids["draft"], idempotency_key=w.ids["proposal_key"], accept=False
            ),
            OK,
        ),
        (
            lambda w: draft_service_pb2.PatchCohortDraftRequest(
                draft_id=w.ids["draft"], name="checked only", validate_only=True
            ),
            OK,
        ),
    ),
    "GetCohortDraft": (
        (lambda w: draft_service_pb2.GetCohortDraftRequest(draft_id=w.ids["draft"]), OK),
    ),
    # A stream of one draft; the all-drafts stream shows nothing of another principal's
    # (tests/cohort_service/test_watch.py).
    "WatchCohortDrafts": (
        (lambda w: draft_service_pb2.WatchCohortDraftsRequest(draft_id=w.ids["draft"]), OK),
    ),
    "DeleteCohortDraft": (
        (lambda w: draft_service_pb2.DeleteCohortDraftRequest(draft_id=w.ids["draft"]), OK),
        (
            lambda w: draft_service_pb2.DeleteCohortDraftRequest(
                draft_id=w.ids["draft"], validate_only=True
            ),
            OK,
        ),
    ),
}

_COHORT_NOT_OWNED: dict[str, Builder] = {
    "CreateDepartment": lambda w: catalog_service_pb2.CreateDepartmentRequest(
        name=_unique("department")
    ),
    "CreateSimulation": lambda w: catalog_service_pb2.CreateSimulationRequest(
        name=_unique("simulation")
    ),
    "CreateProfile": lambda w: catalog_service_pb2.CreateProfileRequest(name=_unique("profile")),
    "CreateFlag": lambda w: catalog_service_pb2.CreateFlagRequest(
        key=f"flag_{uuid.uuid4().hex[:12]}",
        type=catalog_pb2.FLAG_TYPE_MULTI_SELECT,
        options=[catalog_pb2.FlagOption(value="a", label="A")],
    ),
    "ListDepartments": lambda w: catalog_service_pb2.ListDepartmentsRequest(page_size=2),
    "ListSimulations": lambda w: catalog_service_pb2.ListSimulationsRequest(page_size=2),
    "ListProfiles": lambda w: catalog_service_pb2.ListProfilesRequest(page_size=2),
    "ListFlags": lambda w: catalog_service_pb2.ListFlagsRequest(page_size=2),
    # Lists only the caller's drafts; test_lists_show_nothing_of_another_principal checks it.
    "ListCohortDrafts": lambda w: draft_service_pb2.ListCohortDraftsRequest(include_dormant=True),
}


# ---------------------------------------------------------------------------
# report-service
# ---------------------------------------------------------------------------


def _report_setup(channel: grpc.Channel, metadata, tag: str) -> World:
    world = World("report", tag)

    def call(name, **fields):
        method = _method("report", name)
        request = getattr(report_service_pb2, f"{name}Request")(**fields)
        return invoke(channel, method, request, metadata)

    original = f"team:sales-{tag}"
    call(
        "CreateReport",
        report=report_pb2.Report(
            id=original,
            type="dashboard",
            name=f"Sales {tag}",
            defn=_struct({"visuals": [{"kind": "bar"}]}),
            settings=_struct({"theme": "dark"}),
            datasets=[report_pb2.ReportDataset(dataset_id="orders", alias="o")],
            snapshot=report_pb2.SnapshotSettings(enabled=True, schedule="0 6 * * *"),
        ),
    )
    draft = call("EditReport", id=original).id
    call(
        "UpdateReport",
        report=report_pb2.Report(id=draft, defn=_struct({"visuals": []})),
        update_mask=field_mask_pb2.FieldMask(paths=["defn"]),
    )
    call("UpdateUserReportSettings", report_id=original, settings=_struct({"zoom": 2}))
    call("UpdateUserReportSettings", report_id=draft, settings=_struct({"zoom": 3}))
    # The original moves on: the draft is outdated, and a rebase has work to do.
    call(
        "UpdateReport",
        report=report_pb2.Report(id=original, name=f"Sales {tag} v2"),
        update_mask=field_mask_pb2.FieldMask(paths=["name"]),
    )
    first = call("ListReportRevisions", report_id=original).revisions[-1].revision_id
    world.ids.update(original=original, draft=draft, revision=first)
    return world


_RID = "5f0c4e8a-8a53-4d4e-9b7e-2b6f0f3c1d2a"  # one request_id, used by both principals


def _rid(world: World) -> str:
    """A request_id of the world's own (the same each time a request is built on it)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"request:{world.tag}"))


def _on_draft(request_type, **extra) -> Builder:
    return lambda w: request_type(id=w.ids["draft"], **extra)


def _on_original(request_type) -> Builder:
    return lambda w: request_type(id=w.ids["original"])


FAILED = grpc.StatusCode.FAILED_PRECONDITION
_R = report_service_pb2

# The draft RPCs take the original's id and act on the caller's own draft: the other principal
# has none (NOT_FOUND), and naming the owner's draft directly is NOT_FOUND too (the owner gets
# FAILED_PRECONDITION: "that is a draft, give the original").
_REPORT_OWNED: dict[str, tuple[tuple[Builder, grpc.StatusCode], ...]] = {
    "GetReport": ((_on_draft(_R.GetReportRequest), OK),),
    "UpdateReport": (
        (
            lambda w: _R.UpdateReportRequest(
                report=report_pb2.Report(id=w.ids["draft"], name="renamed"),
                update_mask=field_mask_pb2.FieldMask(paths=["name"]),
            ),
            OK,
        ),
    ),
    "DeleteReport": (
        (_on_draft(_R.DeleteReportRequest), OK),
        (_on_draft(_R.DeleteReportRequest, validate_only=True, request_id=_RID), OK),
    ),
    "EditReport": ((_on_draft(_R.EditReportRequest), FAILED),),
    "GetReportDraft": (
        (_on_original(_R.GetReportDraftRequest), OK),
        (_on_draft(_R.GetReportDraftRequest), FAILED),
    ),
    "PutReportDraft": (
        (_on_draft(_R.PutReportDraftRequest, draft=report_pb2.ReportDraftInput()), FAILED),
    ),
    "DiscardReportDraft": (
        (_on_original(_R.DiscardReportDraftRequest), OK),
        (_on_draft(_R.DiscardReportDraftRequest), FAILED),
    ),
    "CommitReportDraft": (
        (_on_original(_R.CommitReportDraftRequest), OK),
        (_on_draft(_R.CommitReportDraftRequest), FAILED),
        (lambda w: _R.CommitReportDraftRequest(id=w.ids["original"], request_id=_rid(w)), OK),
        (lambda w: _R.CommitReportDraftRequest(id=w.ids["original"], validate_only=True), OK),
    ),
    "ListReportActivities": (
        (lambda w: _R.ListReportActivitiesRequest(report_id=w.ids["draft"]), OK),
    ),
    "GetUserReportSettings": (
        (lambda w: _R.GetUserReportSettingsRequest(report_id=w.ids["draft"]), OK),
    ),
    "UpdateUserReportSettings": (
        (
            lambda w: _R.UpdateUserReportSettingsRequest(
                report_id=w.ids["draft"], settings=_struct({"zoom": 9})
            ),
            OK,
        ),
        (
            lambda w: _R.UpdateUserReportSettingsRequest(
                report_id=w.ids["draft"], settings=_struct({"zoom": 8}), request_id=_rid(w)
            ),
            OK,
        ),
    ),
    "DiffReportDraft": (
        (_on_original(_R.DiffReportDraftRequest), OK),
        (_on_draft(_R.DiffReportDraftRequest), FAILED),
    ),
    "RebaseReportDraft": (
        (_on_original(_R.RebaseReportDraftRequest), OK),
        (_on_draft(_R.RebaseReportDraftRequest), FAILED),
    ),
}

_REPORT_NOT_OWNED: dict[str, Builder] = {
    "CreateReport": lambda w: _R.CreateReportRequest(
        report=report_pb2.Report(id=f"team:{uuid.uuid4().hex}", type="table", name="New")
    ),
    # Lists originals only; test_lists_show_nothing_of_another_principal checks it.
    "ListReports": lambda w: _R.ListReportsRequest(page_size=5),
    # Revisions are of originals, which every reader sees and every writer may roll back
    # (another principal's draft id is NOT_FOUND: tests/report_service/test_revisions.py).
    "ListReportRevisions": lambda w: _R.ListReportRevisionsRequest(report_id=w.ids["original"]),
    "GetReportRevision": lambda w: _R.GetReportRevisionRequest(
        report_id=w.ids["original"], revision_id=w.ids["revision"]
    ),
    "RollbackReport": lambda w: _R.RollbackReportRequest(
        id=w.ids["original"], revision_id=w.ids["revision"]
    ),
    # An original is every reader's to watch; its stream carries another principal's draft
    # events to nobody (tests/report_service/test_watch.py), and naming a draft is NOT_FOUND.
    "WatchReport": lambda w: _R.WatchReportRequest(id=w.ids["original"]),
}


# ---------------------------------------------------------------------------
# The classification every RPC must have
# ---------------------------------------------------------------------------

SETUP: dict[str, Callable[[grpc.Channel, list, str], World]] = {
    "cohort": _cohort_setup,
    "report": _report_setup,
}
# RPCs that address something a principal owns: (request builder, the owner's own code).
OWNER_SCOPED = {"cohort": _COHORT_OWNED, "report": _REPORT_OWNED}
# RPCs that address nothing owned (catalog, creation, lists of one's own): a valid request.
NOT_OWNER_SCOPED = {"cohort": _COHORT_NOT_OWNED, "report": _REPORT_NOT_OWNED}


def valid_request(service: str, method_name: str, world: World):
    """A request the owner may make: the first builder of the method's classification."""
    if method_name in OWNER_SCOPED[service]:
        return OWNER_SCOPED[service][method_name][0][0](world)
    return NOT_OWNER_SCOPED[service][method_name](world)
