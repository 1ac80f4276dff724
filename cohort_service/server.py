"""The cohort-service deployable as the platform sees it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc

from cohort_service import expiry, seed
from cohort_service.models import database
from cohort_service.purges import purges
from cohort_service.servicer_catalog import CohortCatalogServicer
from cohort_service.servicer_drafts import CohortDraftServicer
from cohort_service.v1 import (
    catalog_service_pb2,
    catalog_service_pb2_grpc,
    draft_service_pb2,
    draft_service_pb2_grpc,
)
from shared.config import Settings
from shared.purge import Purge
from shared.service import Command, ServiceDefinition


def add_servicers(server: grpc.Server, settings: Settings) -> Sequence[Purge]:
    expiry.PROPOSALS.set(settings.proposal_ttl)
    catalog_service_pb2_grpc.add_CohortCatalogServiceServicer_to_server(
        CohortCatalogServicer(), server
    )
    draft_service_pb2_grpc.add_CohortDraftServiceServicer_to_server(CohortDraftServicer(), server)
    return purges(settings)


SERVICE = ServiceDefinition(
    name="cohort-service",
    env_prefix="COHORT",
    default_port=50051,
    database=database,
    migrations=Path(__file__).parent / "migrations",
    add_servicers=add_servicers,
    service_names=(
        catalog_service_pb2.DESCRIPTOR.services_by_name["CohortCatalogService"].full_name,
        draft_service_pb2.DESCRIPTOR.services_by_name["CohortDraftService"].full_name,
    ),
    lifetimes=("idempotency_ttl", "proposal_ttl", "purge_interval"),
    commands={
        "seed": Command(
            help="load catalog data (departments, simulations, profiles, flags) from a JSON file",
            add_arguments=seed.add_arguments,
            run=seed.run,
        )
    },
)
