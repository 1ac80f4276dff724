"""Fixtures of the cohort-service tests: a real server per test, stubs, and a small catalog."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cohort_service.server import SERVICE
from cohort_service.v1 import catalog_pb2, catalog_service_pb2, catalog_service_pb2_grpc
from tests.cohort_service.support import Client
from tests.support import RunningService, bearer, serve


@pytest.fixture
def server(database_url) -> Iterator[RunningService]:
    with serve(SERVICE, database_url) as running:
        yield running


@pytest.fixture
def alice(server) -> Client:
    return Client(server, bearer("user:alice"))


@pytest.fixture
def bob(server) -> Client:
    return Client(server, bearer("user:bob"))


@dataclass(frozen=True)
class Catalog:
    """Ids of the entries every draft test can point at."""

    departments: dict[str, str]
    simulations: dict[str, str]
    profiles: dict[str, str]
    flags: dict[str, catalog_pb2.Flag]

    def option(self, flag_key: str, value: str) -> str:
        return next(o.id for o in self.flags[flag_key].options if o.value == value)


def make_catalog(stub: catalog_service_pb2_grpc.CohortCatalogServiceStub, metadata) -> Catalog:
    """Three departments, two simulations, two profiles, and three flags beside cohort_active."""

    def create(method, request_type, names):
        return {name: method(request_type(name=name), metadata=metadata).id for name in names}

    listed = stub.ListFlags(catalog_service_pb2.ListFlagsRequest(), metadata=metadata).flags
    flags = {flag.key: flag for flag in listed}
    for key, flag_type, values in (
        ("priority", catalog_pb2.FLAG_TYPE_SINGLE_SELECT, ("high", "low")),
        ("channels", catalog_pb2.FLAG_TYPE_MULTI_SELECT, ("email", "chat")),
        ("needs_review", catalog_pb2.FLAG_TYPE_BOOLEAN, ("true", "false")),
    ):
        flags[key] = stub.CreateFlag(
            catalog_service_pb2.CreateFlagRequest(
                key=key,
                type=flag_type,
                options=[catalog_pb2.FlagOption(value=v, label=v.title()) for v in values],
            ),
            metadata=metadata,
        )
    return Catalog(
        departments=create(
            stub.CreateDepartment,
            catalog_service_pb2.CreateDepartmentRequest,
            ["Sales", "Engineering", "Finance"],
        ),
        simulations=create(
            stub.CreateSimulation,
            catalog_service_pb2.CreateSimulationRequest,
            ["Onboarding", "Renewal"],
        ),
        profiles=create(
            stub.CreateProfile,
            catalog_service_pb2.CreateProfileRequest,
            ["Account Executive", "Support Engineer"],
        ),
        flags=flags,
    )


@pytest.fixture
def catalog(alice) -> Catalog:
    return make_catalog(alice.catalog, alice.metadata)
