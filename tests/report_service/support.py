"""Helpers of the report-service tests: a client bound to one principal, a valid report, errors."""

from __future__ import annotations

import contextlib
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from google.protobuf import field_mask_pb2, json_format, struct_pb2

from report_service import models
from report_service.v1 import report_pb2, report_service_pb2, report_service_pb2_grpc
from tests.conftest import POSTGRES_SCHEMA, POSTGRES_URL
from tests.support import RunningService, bearer


def struct(value: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def as_dict(message) -> dict:
    """A message as its proto JSON (the keys a client of the HTTP API sees)."""
    return json_format.MessageToDict(message)


def valid_report(**changes) -> report_pb2.Report:
    """A report CreateReport accepts; each test changes the one field it is about."""
    fields = {
        "id": "team:sales-dashboard",
        "type": "dashboard",
        "name": "Sales Dashboard",
        "defn": struct({"visuals": [{"kind": "bar"}]}),
        "template_id": "template-123",
        "datasource_id": "mysql-prod",
        "settings": struct({"theme": "dark"}),
        "enable_filter": True,
        "datasets": [
            report_pb2.ReportDataset(dataset_id="orders", alias="o"),
            report_pb2.ReportDataset(dataset_id="customers", alias="c"),
        ],
        "snapshot": report_pb2.SnapshotSettings(enabled=True, schedule="0 6 * * *", retain_count=7),
    }
    fields.update(changes)
    return report_pb2.Report(**fields)


@dataclass
class Client:
    """ReportService as seen by one principal: `alice.call("GetReport", id=...)`."""

    server: RunningService
    metadata: list[tuple[str, str]]

    @classmethod
    def of(cls, server: RunningService, subject: str, permissions=None) -> Client:
        if permissions is None:
            return cls(server, bearer(subject))
        return cls(server, bearer(subject, permissions))

    @property
    def stub(self) -> report_service_pb2_grpc.ReportServiceStub:
        return report_service_pb2_grpc.ReportServiceStub(self.server.channel)

    def call(self, rpc: str, *, timeout: float | None = None, **fields):
        request = getattr(report_service_pb2, f"{rpc}Request")(**fields)
        return getattr(self.stub, rpc)(request, metadata=self.metadata, timeout=timeout)

    def create(self, **changes) -> report_pb2.Report:
        return self.call("CreateReport", report=valid_report(**changes))


# Each write RPC's request (as fields) on a world of: alice's original team:sales-dashboard
# (valid_report()) and her draft of it, whose id the builder takes.
WRITES: dict[str, Callable[[str], dict]] = {
    "CreateReport": lambda draft: {"report": valid_report(id="team:new")},
    "UpdateReport": lambda draft: {
        "report": report_pb2.Report(id="team:sales-dashboard", name="Renamed"),
        "update_mask": field_mask_pb2.FieldMask(paths=["name"]),
    },
    "DeleteReport": lambda draft: {"id": "team:sales-dashboard"},
    "EditReport": lambda draft: {"id": "team:sales-dashboard"},
    "PutReportDraft": lambda draft: {
        "id": "team:sales-dashboard",
        "draft": report_pb2.ReportDraftInput(defn=struct({"v": "put"})),
    },
    "DiscardReportDraft": lambda draft: {"id": "team:sales-dashboard"},
    "CommitReportDraft": lambda draft: {"id": "team:sales-dashboard"},
    "RebaseReportDraft": lambda draft: {"id": "team:sales-dashboard"},
    "RollbackReport": lambda draft: {
        "id": "team:sales-dashboard",
        "revision_id": _oldest_revision("team:sales-dashboard"),
    },
    "UpdateUserReportSettings": lambda draft: {
        "report_id": draft,
        "settings": struct({"zoom": 2}),
    },
}


def _oldest_revision(report_id: str) -> str:
    """The revision_id of report_id's first kept revision, read from the served store."""
    oldest = (
        models.ReportRevision.select()
        .where(models.ReportRevision.report == report_id)
        .order_by(models.ReportRevision.id)
        .first()
    )
    assert oldest is not None, report_id
    return oldest.revision_id


def write_driver(directory: Path, source: str, attribute: str = "Driver") -> str:
    """source as a module in directory, registered (dist-info) as the driver of report type
    `dashboard`: found by a server whose sys.path holds directory. Returns the module's name."""
    module = f"report_driver_{uuid.uuid4().hex}"
    (directory / f"{module}.py").write_text(textwrap.dedent(source))
    dist_info = directory / f"{module}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        f"[report_service.drivers]\ndashboard = {module}:{attribute}\n"
    )
    return module


def create_changed_draft(stub, metadata, report_id: str = "team:crash") -> None:
    """Create a report and alice's draft of it that differs in every committed field."""
    stub.CreateReport(
        report_service_pb2.CreateReportRequest(report=valid_report(id=report_id)),
        metadata=metadata,
    )
    stub.EditReport(report_service_pb2.EditReportRequest(id=report_id), metadata=metadata)
    draft = valid_report(
        id=f"user:alice:{report_id.partition(':')[2]}-draft",
        name="Renamed",
        defn=struct({"marker": "v2"}),
        datasets=[],
    )
    stub.UpdateReport(
        report_service_pb2.UpdateReportRequest(
            report=draft, update_mask={"paths": ["name", "defn", "datasets"]}
        ),
        metadata=metadata,
    )


@contextlib.contextmanager
def report_row_locked(report_id: str) -> Iterator[None]:
    """The report's row lock (PostgreSQL, the tests' schema), held by a connection of the
    test's own inside the block: a server's transaction that writes the row waits for it."""
    connection = psycopg2.connect(POSTGRES_URL)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f'SELECT id FROM "{POSTGRES_SCHEMA}".report WHERE id = %s FOR UPDATE', (report_id,)
            )
        yield
    finally:
        connection.rollback()
        connection.close()
