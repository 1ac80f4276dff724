"""The measured scenarios: data set up through the services' own RPCs and CLI, then calls.

Each scenario gives one call sequence per coroutine (up to the highest concurrency), so
that concurrent writers work on their own report or draft, as independent users would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import struct_pb2

from bench.loadgen import FRESH, Step
from cohort_service.v1 import (
    catalog_service_pb2,
    catalog_service_pb2_grpc,
    draft_pb2,
    draft_service_pb2,
    draft_service_pb2_grpc,
)
from report_service.v1 import report_pb2, report_service_pb2, report_service_pb2_grpc
from tests.support import TEST_SECRET, bearer

DRAFTS = "/cohort_service.v1.CohortDraftService/"
REPORTS = "/report_service.v1.ReportService/"
TOKEN_SECONDS = 6 * 3600
PositionValue = draft_pb2.DraftSimulationPositionValue


@dataclass(frozen=True)
class Scenario:
    name: str
    service: str  # "cohort-service" | "report-service" | "baseline"
    sequences: list[list[Step]]
    request_bytes: int  # size of the first step's request, for the table's footnote
    response_bytes: int
    # Tens of ms per call: needs a longer window to count enough calls, and --quick leaves
    # out its C=64 point (64 calls in flight take seconds to come back once).
    slow: bool = False


def metadata_for(sub: str) -> tuple[tuple[str, str], ...]:
    return tuple(bearer(sub, ttl_seconds=TOKEN_SECONDS))


def _scenario(
    name: str,
    service: str,
    sequences: list[list[Step]],
    channel: grpc.Channel,
    *,
    slow: bool = False,
) -> Scenario:
    first = sequences[0][0]
    response = channel.unary_unary(first.method)(first.request, metadata=first.metadata)
    return Scenario(name, service, sequences, len(first.request), len(response), slow)


# ---------------------------------------------------------------------------
# Baseline
# ---------------------------------------------------------------------------


def baseline(channel: grpc.Channel) -> Scenario:
    from bench.baseline_server import METHOD

    return _scenario("baseline echo 1 KB", "baseline", [[Step(METHOD, b"x" * 1024)]], channel)


# ---------------------------------------------------------------------------
# report-service
# ---------------------------------------------------------------------------


def _defn(widgets: int) -> struct_pb2.Struct:
    defn = struct_pb2.Struct()
    defn.update({"visuals": [{"id": f"v{i}", "kind": "bar", "x": i} for i in range(widgets)]})
    return defn


def report_scenarios(channel: grpc.Channel, count: int) -> list[Scenario]:
    """GetReport, and the seed's workflow EditReport -> PutReportDraft -> CommitReportDraft."""
    stub = report_service_pb2_grpc.ReportServiceStub(channel)
    gets, workflows = [], []
    for k in range(count):
        report_id = f"team:bench-{k}"
        metadata = metadata_for(f"user:bench-{k}")
        report = report_pb2.Report(
            id=report_id, type="dashboard", name=f"Bench report {k}", defn=_defn(5)
        )
        stub.CreateReport(report_service_pb2.CreateReportRequest(report=report), metadata=metadata)
        get = report_service_pb2.GetReportRequest(id=report_id)
        gets.append([Step(REPORTS + "GetReport", get.SerializeToString(), metadata)])
        edit = report_service_pb2.EditReportRequest(id=report_id)
        put = report_service_pb2.PutReportDraftRequest(
            id=report_id, draft=report_pb2.ReportDraftInput(defn=_defn(6))
        )
        commit = report_service_pb2.CommitReportDraftRequest(id=report_id)
        workflows.append(
            [
                Step(REPORTS + "EditReport", edit.SerializeToString(), metadata),
                Step(REPORTS + "PutReportDraft", put.SerializeToString(), metadata),
                Step(REPORTS + "CommitReportDraft", commit.SerializeToString(), metadata),
            ]
        )
    return [
        _scenario("GetReport", "report-service", gets, channel),
        _scenario("Edit→Put→Commit (per RPC)", "report-service", workflows, channel),
    ]


# ---------------------------------------------------------------------------
# cohort-service
# ---------------------------------------------------------------------------


def department(number: int) -> str:
    return f"Department {number:06d}"


def seed_catalog(database_url: str, departments: int, work: Path) -> None:
    """Load the catalog with the production `seed` command, as an operator would."""
    data = {
        "departments": [department(n) for n in range(departments)],
        "simulations": ["Simulation 0"],
        "flags": [
            {
                "key": "priority",
                "type": "SINGLE_SELECT",
                "options": [{"value": "high", "label": "High"}],
            },
            {
                "key": "channels",
                "type": "MULTI_SELECT",
                "options": [{"value": "email", "label": "Email"}],
            },
        ],
    }
    path = work / f"catalog-{departments}.json"
    path.write_text(json.dumps(data))
    subprocess.run(
        [sys.executable, "-m", "cohort_service", "seed", str(path)],
        env={"COHORT_DATABASE_URL": database_url, "AUTH_JWT_SECRET": TEST_SECRET, "PATH": ""},
        check=True,
        capture_output=True,
    )


class Cohorts:
    """Builds cohort-service requests against a seeded catalog."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.stub = draft_service_pb2_grpc.CohortDraftServiceStub(channel)
        catalog = catalog_service_pb2_grpc.CohortCatalogServiceStub(channel)
        flags = catalog.ListFlags(
            catalog_service_pb2.ListFlagsRequest(page_size=100), metadata=metadata_for("user:admin")
        ).flags
        self.options = [
            option.id
            for flag in flags
            if flag.key in ("priority", "channels")
            for option in flag.options
        ]

    def draft(self, sub: str, positions: int) -> str:
        """A new draft of `sub` holding `positions` simulation positions (its items)."""
        request = draft_service_pb2.PatchCohortDraftRequest(
            name="Bench cohort",
            simulations=["Simulation 0"],
            simulation_positions=[
                PositionValue(simulation="Simulation 0", title=f"Position {i}", description="d")
                for i in range(positions)
            ],
        )
        return self.stub.PatchCohortDraft(request, metadata=metadata_for(sub)).draft_id

    def typical(self, draft_id: str, key: str = "") -> draft_service_pb2.PatchCohortDraftRequest:
        """The issue's typical patch: name, 3 departments by name, 2 flags, 1 position."""
        return draft_service_pb2.PatchCohortDraftRequest(
            draft_id=draft_id,
            name="Q3 onboarding",
            departments=[department(1), department(2), department(3)],
            flag_ids=self.options,
            simulation_positions=[
                PositionValue(simulation="Simulation 0", title="Lead", description="leads")
            ],
            idempotency_key=key,
        )


def _patch_step(request, metadata) -> Step:
    return Step(DRAFTS + "PatchCohortDraft", request.SerializeToString(), metadata)


def get_step(draft_id: str, metadata) -> Step:
    request = draft_service_pb2.GetCohortDraftRequest(draft_id=draft_id)
    return Step(DRAFTS + "GetCohortDraft", request.SerializeToString(), metadata)


def cohort_scenarios(channel: grpc.Channel, count: int) -> list[Scenario]:
    cohorts = Cohorts(channel)
    typical, retries, acks = [], [], []
    for k in range(count):
        sub = f"user:bench-{k}"
        metadata = metadata_for(sub)
        draft_id = cohorts.draft(sub, 1)
        typical.append([_patch_step(cohorts.typical(draft_id), metadata)])
        retry = cohorts.typical(draft_id, key=f"retry-{k}")
        cohorts.stub.PatchCohortDraft(retry, metadata=metadata)  # the first call applies it
        retries.append([_patch_step(retry, metadata)])
        soft = draft_service_pb2.PatchCohortDraftRequest(
            draft_id=draft_id, name="Proposed name", soft=True, idempotency_key=FRESH.decode()
        )
        ack = draft_service_pb2.PatchCohortDraftRequest(
            draft_id=draft_id, accept=True, idempotency_key=FRESH.decode()
        )
        acks.append([_patch_step(soft, metadata), _patch_step(ack, metadata)])
    reader = metadata_for("user:bench-reader")
    small = cohorts.draft("user:bench-reader", 10)
    large = cohorts.draft("user:bench-reader", 1000)
    return [
        _scenario("PatchCohortDraft typical", "cohort-service", typical, channel),
        _scenario("PatchCohortDraft idempotent retry", "cohort-service", retries, channel),
        _scenario(
            "GetCohortDraft 10 items", "cohort-service", [[get_step(small, reader)]], channel
        ),
        _scenario(
            "GetCohortDraft 1,000 items",
            "cohort-service",
            [[get_step(large, reader)]],
            channel,
            slow=True,
        ),
        _scenario("soft patch → ack (per RPC)", "cohort-service", acks, channel),
    ]


SETUPS: dict[str, Callable[[grpc.Channel, int], list[Scenario]]] = {
    "report-service": report_scenarios,
    "cohort-service": cohort_scenarios,
}
