"""The report-service deployable as the platform sees it."""

from __future__ import annotations

from pathlib import Path

import grpc

from report_service.drivers import DriverRegistry
from report_service.models import database
from report_service.revisions import REVISIONS_KEPT
from report_service.servicer import ReportServicer
from report_service.v1 import report_service_pb2, report_service_pb2_grpc
from shared.config import Settings
from shared.service import ServiceDefinition


def add_servicers(server: grpc.Server, settings: Settings) -> None:
    # Drivers are discovered here, once per server, so a plug-in installed later needs a restart.
    report_service_pb2_grpc.add_ReportServiceServicer_to_server(
        ReportServicer(DriverRegistry.discover(), REVISIONS_KEPT.of(settings.options)), server
    )


SERVICE = ServiceDefinition(
    name="report-service",
    env_prefix="REPORT",
    default_port=50052,
    database=database,
    migrations=Path(__file__).parent / "migrations",
    add_servicers=add_servicers,
    service_names=(report_service_pb2.DESCRIPTOR.services_by_name["ReportService"].full_name,),
    options=(REVISIONS_KEPT,),
)
