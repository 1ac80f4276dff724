"""An unknown catalog name says where the valid names are, and the closest ones (SPEC §4).

The closest names come from a bounded read next to the name in the catalog's index, so a
failed call costs the same whatever the catalog's size and however many names it gets wrong.
"""

from __future__ import annotations

import grpc
import pytest

from cohort_service import catalog as catalog_store
from cohort_service.models import Department
from cohort_service.v1 import catalog_service_pb2, draft_pb2
from tests.cohort_service.support import details
from tests.cohort_service.test_query_plans import _plan
from tests.support import count_queries

LIST = "cohort_service.v1.CohortCatalogService/List"


def violations_of(call, **fields) -> dict[str, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(**fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return details(caught.value)[1]


def test_an_unknown_name_names_the_list_rpc_and_the_closest_catalog_names(alice, catalog):
    positions = [draft_pb2.DraftSimulationPositionValue(simulation="Onbording", title="Lead")]
    found = violations_of(
        alice.patch, departments=["Salse"], profiles=["Zzz"], simulation_positions=positions
    )
    assert found == {
        "departments[0]": f'no department named "Salse"; see {LIST}Departments; closest: "Sales"',
        "profiles[0]": f'no profile named "Zzz"; see {LIST}Profiles',  # nothing is close
        "simulation_positions[0].simulation": (
            f'no simulation named "Onbording"; see {LIST}Simulations; closest: "Onboarding"'
        ),
    }


def test_only_the_first_unknown_names_of_a_call_look_for_close_ones(alice, server, catalog):
    def catalog_reads(count: int) -> tuple[int, dict[str, str]]:
        with count_queries(server.database) as counter:
            found = violations_of(alice.patch, departments=[f"Salse {n}" for n in range(count)])
        return sum('FROM "department"' in sql for sql, _ in counter.queries), found

    few, _ = catalog_reads(3)
    many, found = catalog_reads(12)
    assert many == few  # 1 lookup of the names + 2 neighbour reads for each of the first 3
    assert "closest" in found["departments[2]"] and "closest" not in found["departments[3]"]
    assert found["departments[11]"] == f'no department named "Salse 11"; see {LIST}Departments'


def test_the_closest_names_are_read_through_the_name_index(alice, server, catalog):
    with count_queries(server.database) as counter:
        violations_of(alice.patch, departments=["Salse"])
    reads = [(sql, p) for sql, p in counter.queries if "ORDER BY" in sql and "department" in sql]
    assert len(reads) == 2, counter.queries
    for sql, params in reads:
        text = "\n".join(_plan(server.database, sql, params))
        assert "Seq Scan" not in text and not text.startswith("SCAN"), (sql, text)
        assert "department_name_key" in text, (sql, text)


def test_the_closest_names_come_from_a_large_catalog_all_the_same(alice, server):
    names = [f"Department {n:05}" for n in range(2000)] + ["Customer Success"]
    catalog_store.create_missing_entries(Department, names)  # the server's database
    found = violations_of(alice.patch, departments=["Custmer Success", "Department 01234x"])
    assert found["departments[0]"].endswith('closest: "Customer Success"')
    assert '"Department 01234"' in found["departments[1]"]
    listed = alice.catalog.ListDepartments(
        catalog_service_pb2.ListDepartmentsRequest(page_size=1), metadata=alice.metadata
    )
    assert listed.next_page_token  # the List RPC the message names pages through them all
