"""A caller of both services that has only draft-services-api installed (run in a fresh venv).

    python typed_client.py COHORT_ADDRESS REPORT_ADDRESS TOKEN   # prints one JSON line

Type-checked with `mypy --strict` against the package's stubs: every message and stub it
touches is typed, so a wrong field name or type fails the check before it fails the call.
"""

from __future__ import annotations

import json
import sys

import grpc

from cohort_service.v1 import catalog_pb2, catalog_service_pb2, catalog_service_pb2_grpc
from report_service.v1 import report_pb2, report_service_pb2, report_service_pb2_grpc

# What grpc's stubs take as call metadata: a tuple, not a list.
Metadata = tuple[tuple[str, str], ...]


def call_cohort(channel: grpc.Channel, metadata: Metadata) -> list[str]:
    catalog = catalog_service_pb2_grpc.CohortCatalogServiceStub(channel)
    created: catalog_pb2.Department = catalog.CreateDepartment(
        catalog_service_pb2.CreateDepartmentRequest(name="Cardiology"), metadata=metadata
    )
    page: catalog_service_pb2.ListDepartmentsResponse = catalog.ListDepartments(
        catalog_service_pb2.ListDepartmentsRequest(page_size=10), metadata=metadata
    )
    assert created.id in [department.id for department in page.departments]
    return [department.name for department in page.departments]


def call_report(channel: grpc.Channel, metadata: Metadata) -> dict[str, object]:
    reports = report_service_pb2_grpc.ReportServiceStub(channel)
    report = report_pb2.Report(id="team:typed-client", type="dashboard", name="Typed client")
    report.datasets.append(report_pb2.ReportDataset(dataset_id="orders", alias="o"))
    reports.CreateReport(report_service_pb2.CreateReportRequest(report=report), metadata=metadata)
    read: report_pb2.Report = reports.GetReport(
        report_service_pb2.GetReportRequest(id="team:typed-client"), metadata=metadata
    )
    missing: grpc.StatusCode | None = None
    try:
        reports.GetReport(report_service_pb2.GetReportRequest(id="team:absent"), metadata=metadata)
    except grpc.RpcError as error:
        missing = error.code()
    return {
        "name": read.name,
        "datasets": [dataset.dataset_id for dataset in read.datasets],
        "created": read.created_at.ToDatetime().year > 2000,
        "missing": missing.name if missing is not None else None,
    }


def main(cohort_address: str, report_address: str, token: str) -> None:
    metadata: Metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(cohort_address) as cohort:
        departments = call_cohort(cohort, metadata)
    with grpc.insecure_channel(report_address) as report:
        summary = call_report(report, metadata)
    print(json.dumps({"departments": departments, "report": summary}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
