"""CohortCatalogService: create and list the reference data drafts point at."""

from __future__ import annotations

from cohort_service import catalog, mapping
from cohort_service.models import Department, Profile, Simulation
from cohort_service.v1 import catalog_pb2, catalog_service_pb2, catalog_service_pb2_grpc
from cohort_service.writes import WRITE
from shared.pagination import decode_page_token, encode_page_token, page_size


def _page(model, request):
    """(entries, next_page_token) of a List* request over model."""
    entries, cursor = catalog.page_of_entries(
        model, page_size(request.page_size), decode_page_token(request.page_token)
    )
    return entries, encode_page_token(cursor) if cursor else ""


class CohortCatalogServicer(catalog_service_pb2_grpc.CohortCatalogServiceServicer):
    @WRITE(validate_only=True)
    def CreateDepartment(self, request, context) -> catalog_pb2.Department:
        return mapping.catalog_entry(
            catalog_pb2.Department, catalog.create_entry(Department, request.name)
        )

    def ListDepartments(self, request, context):
        entries, token = _page(Department, request)
        return catalog_service_pb2.ListDepartmentsResponse(
            departments=[mapping.catalog_entry(catalog_pb2.Department, e) for e in entries],
            next_page_token=token,
        )

    @WRITE(validate_only=True)
    def CreateSimulation(self, request, context) -> catalog_pb2.Simulation:
        return mapping.catalog_entry(
            catalog_pb2.Simulation, catalog.create_entry(Simulation, request.name)
        )

    def ListSimulations(self, request, context):
        entries, token = _page(Simulation, request)
        return catalog_service_pb2.ListSimulationsResponse(
            simulations=[mapping.catalog_entry(catalog_pb2.Simulation, e) for e in entries],
            next_page_token=token,
        )

    @WRITE(validate_only=True)
    def CreateProfile(self, request, context) -> catalog_pb2.Profile:
        return mapping.catalog_entry(
            catalog_pb2.Profile, catalog.create_entry(Profile, request.name)
        )

    def ListProfiles(self, request, context):
        entries, token = _page(Profile, request)
        return catalog_service_pb2.ListProfilesResponse(
            profiles=[mapping.catalog_entry(catalog_pb2.Profile, e) for e in entries],
            next_page_token=token,
        )

    @WRITE(validate_only=True)
    def CreateFlag(self, request, context) -> catalog_pb2.Flag:
        options = [(option.value, option.label) for option in request.options]
        return mapping.flag(*catalog.create_flag(request.key, request.type, options))

    def ListFlags(self, request, context):
        flags, cursor = catalog.page_of_flags(
            page_size(request.page_size), decode_page_token(request.page_token)
        )
        return catalog_service_pb2.ListFlagsResponse(
            flags=[mapping.flag(flag, options) for flag, options in flags],
            next_page_token=encode_page_token(cursor) if cursor else "",
        )
