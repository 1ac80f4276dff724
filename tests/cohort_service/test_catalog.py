"""CohortCatalogService and the `seed` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from cohort_service.v1 import catalog_pb2, catalog_service_pb2
from tests.cohort_service.support import details
from tests.support import bearer

ROOT = Path(__file__).resolve().parents[2]


def failure(call, request, metadata) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=metadata)
    return (caught.value.code(), *details(caught.value))


def test_create_department_returns_it_with_a_new_uuid(alice):
    created = alice.catalog.CreateDepartment(
        catalog_service_pb2.CreateDepartmentRequest(name="  Sales "), metadata=alice.metadata
    )
    assert created.name == "Sales" and len(created.id) == 36


@pytest.mark.parametrize(
    ("method", "request_type", "reason"),
    [
        ("CreateDepartment", catalog_service_pb2.CreateDepartmentRequest, "DEPARTMENT_EXISTS"),
        ("CreateSimulation", catalog_service_pb2.CreateSimulationRequest, "SIMULATION_EXISTS"),
        ("CreateProfile", catalog_service_pb2.CreateProfileRequest, "PROFILE_EXISTS"),
    ],
)
def test_names_are_unique_per_kind_trimmed_and_case_insensitively(
    alice, method, request_type, reason
):
    create = getattr(alice.catalog, method)
    create(request_type(name="Sales"), metadata=alice.metadata)
    code, got_reason, _ = failure(create, request_type(name=" sALES "), alice.metadata)
    assert (code, got_reason) == (grpc.StatusCode.ALREADY_EXISTS, reason)


def test_blank_and_overlong_names_are_invalid(alice):
    for name in ("   ", "x" * 201):
        code, _, violations = failure(
            alice.catalog.CreateProfile,
            catalog_service_pb2.CreateProfileRequest(name=name),
            alice.metadata,
        )
        assert (code, set(violations)) == (grpc.StatusCode.INVALID_ARGUMENT, {"name"})


def test_list_pages_through_every_entry_in_name_order(alice):
    for name in ("delta", "Alpha", "charlie", "Bravo", "echo"):
        alice.catalog.CreateSimulation(
            catalog_service_pb2.CreateSimulationRequest(name=name), metadata=alice.metadata
        )
    seen, token = [], ""
    while True:
        page = alice.catalog.ListSimulations(
            catalog_service_pb2.ListSimulationsRequest(page_size=2, page_token=token),
            metadata=alice.metadata,
        )
        seen += [s.name for s in page.simulations]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["Alpha", "Bravo", "charlie", "delta", "echo"]


def test_the_boolean_cohort_active_flag_always_exists(alice):
    flags = alice.catalog.ListFlags(
        catalog_service_pb2.ListFlagsRequest(), metadata=alice.metadata
    ).flags
    assert [(f.key, f.type, [o.value for o in f.options]) for f in flags] == [
        ("cohort_active", catalog_pb2.FLAG_TYPE_BOOLEAN, ["true", "false"])
    ]


def test_create_flag_returns_the_flag_with_option_ids(alice):
    flag = alice.catalog.CreateFlag(
        catalog_service_pb2.CreateFlagRequest(
            key="priority",
            type=catalog_pb2.FLAG_TYPE_SINGLE_SELECT,
            options=[
                catalog_pb2.FlagOption(value="high", label="High"),
                catalog_pb2.FlagOption(value="low"),
            ],
        ),
        metadata=alice.metadata,
    )
    assert [(o.value, o.label) for o in flag.options] == [("high", "High"), ("low", "")]
    assert all(len(o.id) == 36 for o in flag.options)
    code, reason, _ = failure(
        alice.catalog.CreateFlag,
        catalog_service_pb2.CreateFlagRequest(
            key="priority",
            type=catalog_pb2.FLAG_TYPE_MULTI_SELECT,
            options=[catalog_pb2.FlagOption(value="a")],
        ),
        alice.metadata,
    )
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "FLAG_EXISTS")


def test_an_invalid_flag_reports_every_problem_at_once(alice):
    code, _, violations = failure(
        alice.catalog.CreateFlag,
        catalog_service_pb2.CreateFlagRequest(
            key="Bad Key",
            type=catalog_pb2.FLAG_TYPE_BOOLEAN,
            options=[catalog_pb2.FlagOption(value="yes"), catalog_pb2.FlagOption(value="yes")],
        ),
        alice.metadata,
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations) == {"key", "options[1].value", "options"}


def test_listing_needs_only_cohort_read_and_creating_needs_catalog_write(server, alice):
    reader = bearer("user:reader", ["cohort:read"])
    assert alice.catalog.ListDepartments(
        catalog_service_pb2.ListDepartmentsRequest(), metadata=reader
    )
    code, _, _ = failure(
        alice.catalog.CreateDepartment,
        catalog_service_pb2.CreateDepartmentRequest(name="x"),
        reader,
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED


def test_seed_loads_the_example_catalog_and_running_it_again_adds_nothing(sqlite_url):
    def seed() -> str:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cohort_service",
                "seed",
                "--database-url",
                sqlite_url,
                "examples/catalog.json",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    assert "4 departments added" in seed()
    assert "0 departments added, 0 simulations added, 0 profiles added, 0 flags added" in seed()
