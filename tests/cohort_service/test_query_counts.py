"""The store issues a fixed number of queries per call, whatever the number of items."""

from __future__ import annotations

from cohort_service.models import Department, database, name_key
from cohort_service.v1 import draft_pb2
from tests.cohort_service.support import forget_form_cache
from tests.support import count_queries


def _departments(count: int) -> list[str]:
    names = [f"Department {n:04d}" for n in range(count)]
    with database.atomic():
        Department.insert_many([{"name": n, "name_key": name_key(n)} for n in names]).execute()
    return [str(d.id) for d in Department.select().order_by(Department.name_key)]


def test_a_patch_costs_the_same_queries_with_1_and_500_departments(alice, server):
    ids = _departments(500)
    names = [f"department {n:04d}" for n in range(500)]
    counts = []
    for size in (1, 500):
        draft_id = alice.patch(name="warm-up").draft_id
        with count_queries(server.database) as counter:
            alice.patch(
                draft_id=draft_id,
                department_ids=ids[:size],
                departments=names[:size],
                pending_ids=ids[:size],
            )
        counts.append(counter.count)
    assert counts[0] == counts[1]


def test_get_and_list_cost_the_same_queries_with_1_and_500_departments(alice, server):
    ids = _departments(500)
    counts = []
    for size in (1, 500):
        draft_id = alice.patch(department_ids=ids[:size]).draft_id
        with count_queries(server.database) as counter:
            alice.get(draft_id)
            alice.list()
        counts.append(counter.count)
    assert counts[0] == counts[1]


def _draft_with_three_positions(alice) -> str:
    return alice.patch(
        simulations=["Onboarding"],
        name="Q1",
        simulation_positions=[
            draft_pb2.DraftSimulationPositionValue(simulation="Onboarding", title=f"P{n}")
            for n in range(3)
        ],
    ).draft_id


def test_a_draft_read_again_costs_no_query_for_its_value_resources(alice, server, catalog):
    # Value resources never change once committed: the process keeps those it read.
    draft_id = _draft_with_three_positions(alice)
    forget_form_cache(draft_id)  # read from its links, as a draft stored before 0006
    first = alice.get(draft_id)
    with count_queries(server.database) as counter:
        again = alice.get(draft_id)
    assert again == first
    read = " ".join(counter.statements)
    assert '"simulation"' in read  # catalog entries are not kept by the process
    assert '"simulation_position"' not in read
    assert '"draft_name"' not in read


def test_a_draft_read_reads_its_row_and_only_then_its_proposals_if_it_has_any(
    alice, server, catalog
):
    # The form comes from the bytes on the draft row (cohort_service.form_cache), and the
    # row counts its staged proposals.
    draft_id = _draft_with_three_positions(alice)
    with count_queries(server.database) as counter:
        alice.get(draft_id)
    assert counter.statements == [counter.statements[0]] and '"draft"' in counter.statements[0]
    alice.patch(draft_id=draft_id, name="Q2", soft=True, idempotency_key="soft-1")
    with count_queries(server.database) as counter:
        assert alice.get(draft_id).proposals[0].idempotency_key == "soft-1"
    tables = [s.split(" FROM ")[1].split()[0] for s in counter.statements if " FROM " in s]
    assert tables == ['"draft"', '"draft"', '"proposal"'], counter.statements


def test_a_patch_claims_its_idempotency_key_without_a_savepoint(alice, server):
    # INSERT ... ON CONFLICT DO NOTHING: the two statements of a savepoint are gone.
    draft_id = alice.patch(name="warm-up").draft_id
    with count_queries(server.database) as counter:
        alice.patch(draft_id=draft_id, name="Q2", idempotency_key="k-1")
        alice.patch(draft_id=draft_id, name="Q2", idempotency_key="k-1")  # a replay
    assert not [s for s in counter.statements if "SAVEPOINT" in s.upper()]
    claims = [s for s in counter.statements if "ON CONFLICT" in s and "idempotency_record" in s]
    assert len(claims) == 2
