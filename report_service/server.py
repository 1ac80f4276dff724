"""The report-service deployable as the platform sees it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc

from report_service import expiry
from report_service.drivers import DriverRegistry
from report_service.models import EVENTS, database
from report_service.purges import purges
from report_service.revisions import REVISIONS_KEPT
from report_service.servicer import ReportServicer
from report_service.v1 import report_service_pb2, report_service_pb2_grpc
from shared.config import Settings
from shared.purge import Purge
from shared.service import ServiceDefinition


def add_servicers(server: grpc.Server, settings: Settings) -> Sequence[Purge]:
    expiry.DRAFTS.set(settings.draft_ttl)
    # Drivers are discovered here, once per server, so a plug-in installed later needs a restart.
    drivers = DriverRegistry.discover()
    report_service_pb2_grpc.add_ReportServiceServicer_to_server(
        ReportServicer(drivers, REVISIONS_KEPT.of(settings.options)), server
    )
    return purges(drivers, settings)


SERVICE = ServiceDefinition(
    name="report-service",
    env_prefix="REPORT",
    default_port=50052,
    database=database,
    migrations=Path(__file__).parent / "migrations",
    add_servicers=add_servicers,
    service_names=(report_service_pb2.DESCRIPTOR.services_by_name["ReportService"].full_name,),
    lifetimes=("idempotency_ttl", "draft_ttl", "purge_interval", "event_retention"),
    options=(REVISIONS_KEPT,),
    events=EVENTS,
)
