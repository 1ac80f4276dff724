"""The cohort-service deployable as the platform sees it."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import cast

import grpc

from cohort_service import expiry, seed
from cohort_service.models import EVENTS, database
from cohort_service.purges import purges
from cohort_service.servicer_catalog import CohortCatalogServicer
from cohort_service.servicer_drafts import SERIALIZED_RESPONSES, CohortDraftServicer
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
    draft_service_pb2_grpc.add_CohortDraftServiceServicer_to_server(
        CohortDraftServicer(),
        cast(grpc.Server, _SerializedResponses(server, SERIALIZED_RESPONSES)),
    )
    return purges(settings)


class _SerializedResponses:
    """The server as a generated add_*Servicer_to_server sees it, registering the methods
    named without their response serializer: their handlers answer bytes, which grpc sends
    as they are (a handler's serializer may be None; grpc then sends what it returns)."""

    def __init__(self, server: grpc.Server, methods: Collection[str]) -> None:
        self._server = server
        self._methods = methods

    def add_generic_rpc_handlers(self, handlers) -> None:
        pass  # add_registered_method_handlers below gets the same methods; both are made there

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        handlers = {
            name: handler._replace(response_serializer=None) if name in self._methods else handler
            for name, handler in handlers.items()
        }
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, handlers),)
        )
        self._server.add_registered_method_handlers(service, handlers)


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
    lifetimes=("idempotency_ttl", "proposal_ttl", "purge_interval", "event_retention"),
    events=EVENTS,
    commands={
        "seed": Command(
            help="load catalog data (departments, simulations, profiles, flags) from a JSON file",
            add_arguments=seed.add_arguments,
            run=seed.run,
        )
    },
)
