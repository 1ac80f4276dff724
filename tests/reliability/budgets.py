"""Maximal requests for every RPC: the largest inputs the services accept, on the largest data.

`CASES[service][rpc]` lists case functions `case(session) -> request`; a case may first make
set-up calls through `session.call` (not measured), then returns the request to measure.
`SETUP[service](session)` builds the data the cases read: resources at their size budget,
and enough of them that every list page reaches its byte budget.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from google.protobuf import field_mask_pb2, struct_pb2

from cohort_service.v1 import catalog_pb2, catalog_service_pb2, draft_pb2, draft_service_pb2
from report_service import validation
from report_service.v1 import report_pb2, report_service_pb2
from shared.budget import RESOURCE_MAX_BYTES
from tests.reliability.rpc import DEFINITIONS, invoke, methods_of

WIDE = "\U0001f389"  # 4 bytes in UTF-8: the most bytes a character limit lets through


@dataclass
class Session:
    """A channel to one service process, the caller's metadata, and what the set-up made."""

    channel: grpc.Channel
    metadata: list
    entries: int  # catalog entries and flags of each kind the set-up creates
    ids: dict[str, str] = field(default_factory=dict)
    counter: itertools.count = field(default_factory=itertools.count)

    def call(self, service: str, rpc: str, request):
        method = next(m for m in methods_of(DEFINITIONS[service]) if m.name == rpc)
        return invoke(self.channel, method, request, self.metadata, timeout=120)

    def unique(self) -> int:
        return next(self.counter)


Case = Callable[[Session], object]


def _struct(value: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


# ---------------------------------------------------------------------------
# report-service
# ---------------------------------------------------------------------------

_R = report_service_pb2


def maximal_report(report_id: str, letter: str = "x") -> report_pb2.Report:
    """A report whose editable fields are within 1 KiB of the budget: 1,000 datasets, long
    ids and name, and a defn filling the rest."""
    report = report_pb2.Report(
        id=report_id,
        type="dashboard",
        name=WIDE * 200,
        template_id="t" * 512,
        datasource_id="s" * 512,
        query_id="q" * 512,
        settings=_struct({"theme": "dark"}),
        enable_filter=True,
        datasets=[
            report_pb2.ReportDataset(dataset_id=f"{index:04d}" + "d" * 296, alias="a" * 100)
            for index in range(1000)
        ],
        snapshot=report_pb2.SnapshotSettings(enabled=True, schedule="s" * 200, retain_count=7),
    )
    room = RESOURCE_MAX_BYTES - 1024 - sum(validation.content_sizes(report).values())
    report.defn.CopyFrom(_struct({"blob": letter * room}))
    return report


def _numbers() -> struct_pb2.Struct:
    """A Struct just under the 4 MiB request limit made of one-digit numbers (11 bytes each)."""
    return struct_pb2.Struct.FromString(_numbers_bytes())


@functools.cache
def _numbers_bytes() -> bytes:
    return _struct({"n": [0] * 370_000}).SerializeToString()


def maximal_defn(letter: str) -> struct_pb2.Struct:
    return maximal_report("-", letter).defn


def _report_setup(session: Session) -> None:
    call = lambda rpc, request: session.call("report", rpc, request)  # noqa: E731
    for index in range(4):  # a ListReports page holds two of them
        call("CreateReport", _R.CreateReportRequest(report=maximal_report(f"team:big-{index}")))
    session.ids["report"] = "team:big-0"
    session.ids["edited"] = edited = "team:big-1"
    for letter in "abc":  # activities whose details carry a whole defn
        _commit_ready(session, edited, letter)
        call("CommitReportDraft", _R.CommitReportDraftRequest(id=edited))
    settings = _struct({"zoom": "z" * (RESOURCE_MAX_BYTES - 64)})
    call(
        "UpdateUserReportSettings",
        _R.UpdateUserReportSettingsRequest(report_id="team:big-0", settings=settings),
    )


def _commit_ready(session: Session, report_id: str, letter: str) -> None:
    session.call("report", "EditReport", _R.EditReportRequest(id=report_id))
    session.call(
        "report",
        "PutReportDraft",
        _R.PutReportDraftRequest(
            id=report_id, draft=report_pb2.ReportDraftInput(defn=maximal_defn(letter))
        ),
    )


def _fresh_report(session: Session) -> str:
    report_id = f"team:fresh-{session.unique()}"
    session.call("report", "CreateReport", _R.CreateReportRequest(report=maximal_report(report_id)))
    return report_id


def _edited(session: Session) -> str:
    session.call("report", "EditReport", _R.EditReportRequest(id=session.ids["edited"]))
    return session.ids["edited"]


def _committable(session: Session) -> str:
    _commit_ready(session, session.ids["edited"], "xyz"[session.unique() % 3])
    return session.ids["edited"]


def _diverged(session: Session) -> str:
    """The edited report with a draft whose defn, its original's and its base's all differ,
    each filling the budget: the largest diff, and a rebase with a conflict."""
    report_id = session.ids["edited"]
    _commit_ready(session, report_id, "dp"[session.unique() % 2])
    session.call(
        "report",
        "UpdateReport",
        _R.UpdateReportRequest(
            report=report_pb2.Report(id=report_id, defn=maximal_defn("uv"[session.unique() % 2])),
            update_mask=field_mask_pb2.FieldMask(paths=["defn"]),
        ),
    )
    return report_id


def _oldest_revision(session: Session, report_id: str) -> str:
    revisions = session.call(
        "report",
        "ListReportRevisions",
        _R.ListReportRevisionsRequest(report_id=report_id, page_size=1000),
    )
    while revisions.next_page_token:
        revisions = session.call(
            "report",
            "ListReportRevisions",
            _R.ListReportRevisionsRequest(
                report_id=report_id, page_token=revisions.next_page_token
            ),
        )
    return revisions.revisions[-1].revision_id


REPORT_CASES: dict[str, tuple[Case, ...]] = {
    "CreateReport": (
        lambda s: _R.CreateReportRequest(report=maximal_report(f"team:new-{s.unique()}")),
    ),
    "GetReport": (lambda s: _R.GetReportRequest(id=s.ids["report"]),),
    "ListReports": (lambda s: _R.ListReportsRequest(page_size=1000),),
    "UpdateReport": (
        lambda s: _R.UpdateReportRequest(
            report=maximal_report(s.ids["report"], "u"),
            update_mask=field_mask_pb2.FieldMask(paths=["*"]),
        ),
        # Over the budget: refused, and nothing read back whole.
        lambda s: _R.UpdateReportRequest(
            report=report_pb2.Report(id=s.ids["report"], settings=maximal_defn("o")),
            update_mask=field_mask_pb2.FieldMask(paths=["settings"]),
        ),
        # Near 4 MiB of one-digit numbers: the Struct that costs most per byte to convert.
        lambda s: _R.UpdateReportRequest(
            report=report_pb2.Report(id=s.ids["report"], defn=_numbers()),
            update_mask=field_mask_pb2.FieldMask(paths=["defn"]),
        ),
    ),
    "DeleteReport": (lambda s: _R.DeleteReportRequest(id=_fresh_report(s)),),
    "EditReport": (lambda s: _R.EditReportRequest(id=s.ids["edited"]),),
    "GetReportDraft": (lambda s: _R.GetReportDraftRequest(id=_edited(s)),),
    "PutReportDraft": (
        lambda s: _R.PutReportDraftRequest(
            id=s.ids["edited"], draft=report_pb2.ReportDraftInput(defn=maximal_defn("p"))
        ),
        lambda s: _R.PutReportDraftRequest(
            id=s.ids["edited"], draft=report_pb2.ReportDraftInput(settings=_numbers())
        ),
    ),
    "DiscardReportDraft": (lambda s: _R.DiscardReportDraftRequest(id=_edited(s)),),
    "CommitReportDraft": (lambda s: _R.CommitReportDraftRequest(id=_committable(s)),),
    "ListReportActivities": (
        lambda s: _R.ListReportActivitiesRequest(report_id=s.ids["edited"], page_size=1000),
    ),
    "GetUserReportSettings": (
        lambda s: _R.GetUserReportSettingsRequest(report_id=s.ids["report"]),
    ),
    "UpdateUserReportSettings": (
        lambda s: _R.UpdateUserReportSettingsRequest(
            report_id=s.ids["report"],
            settings=_struct({"zoom": "y" * (RESOURCE_MAX_BYTES - 64)}),
        ),
    ),
    "DiffReportDraft": (lambda s: _R.DiffReportDraftRequest(id=_diverged(s)),),
    "RebaseReportDraft": (
        lambda s: _R.RebaseReportDraftRequest(id=_diverged(s)),
        lambda s: _R.RebaseReportDraftRequest(id=_diverged(s), validate_only=True),
    ),
    "ListReportRevisions": (
        lambda s: _R.ListReportRevisionsRequest(report_id=s.ids["edited"], page_size=1000),
    ),
    "GetReportRevision": (
        lambda s: _R.GetReportRevisionRequest(
            report_id=s.ids["report"], revision_id=_oldest_revision(s, s.ids["report"])
        ),
    ),
    # The SNAPSHOT: the original and the caller's draft, each up to the budget.
    "WatchReport": (lambda s: _R.WatchReportRequest(id=_committable(s)),),
    "RollbackReport": (
        lambda s: _R.RollbackReportRequest(
            id=s.ids["edited"], revision_id=_oldest_revision(s, s.ids["edited"])
        ),
        lambda s: _R.RollbackReportRequest(
            id=s.ids["edited"],
            revision_id=_oldest_revision(s, s.ids["edited"]),
            validate_only=True,
        ),
    ),
}


# ---------------------------------------------------------------------------
# cohort-service
# ---------------------------------------------------------------------------

_C = catalog_service_pb2
_D = draft_service_pb2
POSITIONS = 85  # of 10,000 characters and wide titles: a form just under the budget


def _wide_name(session: Session) -> str:
    return f"{session.unique():06d}" + WIDE * 194


def _wide_flag(session: Session) -> _C.CreateFlagRequest:
    return _C.CreateFlagRequest(
        key=f"wide_{session.unique():06d}",
        type=catalog_pb2.FLAG_TYPE_MULTI_SELECT,
        options=[
            catalog_pb2.FlagOption(value=f"{n:03d}" + WIDE * 197, label=WIDE * 200)
            for n in range(100)
        ],
    )


def _big_draft_request(session: Session, **extra) -> _D.PatchCohortDraftRequest:
    simulation = session.ids["simulation"]
    return _D.PatchCohortDraftRequest(
        name=WIDE * 200,
        simulation_ids=[simulation],
        simulation_positions=[
            draft_pb2.DraftSimulationPositionValue(
                simulation_id=simulation, title=WIDE * 200, description="d" * 10_000
            )
            for _ in range(POSITIONS)
        ],
        idempotency_key=f"big-{session.unique()}",
        **extra,
    )


def _big_draft(session: Session) -> _D.PatchCohortDraftResponse:
    return session.call("cohort", "PatchCohortDraft", _big_draft_request(session))


def _cohort_setup(session: Session) -> None:
    call = lambda rpc, request: session.call("cohort", rpc, request)  # noqa: E731
    for kind in ("Department", "Simulation", "Profile"):
        request_type = getattr(_C, f"Create{kind}Request")
        for _ in range(session.entries):
            created = call(f"Create{kind}", request_type(name=_wide_name(session)))
        session.ids[kind.lower()] = created.id
    for _ in range(session.entries):
        call("CreateFlag", _wide_flag(session))
    drafts = [_big_draft(session) for _ in range(4)]  # a ListCohortDrafts page holds two
    session.ids["draft"] = drafts[0].draft_id
    session.ids["positions"] = [
        item.id for draft in drafts for item in draft.form_state.simulation_positions
    ]


COHORT_CASES: dict[str, tuple[Case, ...]] = {
    "CreateDepartment": (lambda s: _C.CreateDepartmentRequest(name=_wide_name(s)),),
    "CreateSimulation": (lambda s: _C.CreateSimulationRequest(name=_wide_name(s)),),
    "CreateProfile": (lambda s: _C.CreateProfileRequest(name=_wide_name(s)),),
    "CreateFlag": (_wide_flag,),
    "ListDepartments": (lambda s: _C.ListDepartmentsRequest(page_size=1000),),
    "ListSimulations": (lambda s: _C.ListSimulationsRequest(page_size=1000),),
    "ListProfiles": (lambda s: _C.ListProfilesRequest(page_size=1000),),
    "ListFlags": (lambda s: _C.ListFlagsRequest(page_size=1000),),
    "PatchCohortDraft": (
        _big_draft_request,
        lambda s: _big_draft_request(s, soft=True),
        # A small request re-linking every large value by id: over the budget, refused.
        lambda s: _D.PatchCohortDraftRequest(
            draft_id=s.ids["draft"],
            simulation_position_ids=s.ids["positions"],
            idempotency_key=f"relink-{s.unique()}",
        ),
    ),
    "GetCohortDraft": (lambda s: _D.GetCohortDraftRequest(draft_id=s.ids["draft"]),),
    # All drafts: the snapshot is read a page at a time (its first page, two big drafts,
    # before the first event); and one draft.
    "WatchCohortDrafts": (
        lambda s: _D.WatchCohortDraftsRequest(),
        lambda s: _D.WatchCohortDraftsRequest(draft_id=s.ids["draft"]),
    ),
    "ListCohortDrafts": (
        lambda s: _D.ListCohortDraftsRequest(page_size=1000, include_dormant=True),
    ),
    "DeleteCohortDraft": (lambda s: _D.DeleteCohortDraftRequest(draft_id=_big_draft(s).draft_id),),
}


CASES = {"cohort": COHORT_CASES, "report": REPORT_CASES}
SETUP: dict[str, Callable[[Session], None]] = {"cohort": _cohort_setup, "report": _report_setup}
