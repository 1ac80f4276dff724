"""Name resolution uses the catalog's indexes, so its cost does not grow with the catalog.

The statements are the ones a real PatchCohortDraft issues (captured from peewee's log),
explained on the same database: SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN with
sequential scans priced out (an empty test table would otherwise be scanned whatever its
indexes, because scanning a few rows is cheaper).
"""

from __future__ import annotations

import peewee
import pytest

from cohort_service.v1 import draft_pb2
from tests.cohort_service.support import forget_form_cache
from tests.support import count_queries

CATALOG_TABLES = ("department", "simulation", "profile")


def _catalog_lookups(counter) -> list[tuple[str, tuple]]:
    return [
        (sql, params)
        for sql, params in counter.queries
        if sql.startswith("SELECT") and any(f'FROM "{table}"' in sql for table in CATALOG_TABLES)
    ]


def _plan(database: peewee.Database, sql: str, params: tuple) -> list[str]:
    if isinstance(database, peewee.PostgresqlDatabase):
        with database.atomic():
            database.execute_sql("SET LOCAL enable_seqscan = off")
            return [row[0] for row in database.execute_sql("EXPLAIN " + sql, params)]
    return [row[-1] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params)]


@pytest.mark.parametrize(
    "fields",
    [
        {"departments": [" sales ", "FINANCE"], "simulations": ["Onboarding"]},
        {"profiles": ["Account Executive"], "simulations": ["renewal"], "departments": []},
    ],
    ids=["by-name", "names-of-other-kinds"],
)
def test_name_resolution_searches_the_catalog_by_index_never_by_scan(
    alice, server, catalog, fields
):
    with count_queries(server.database) as counter:
        alice.patch(**fields)
    lookups = _catalog_lookups(counter)
    assert lookups, "the patch resolved no catalog name through the store"
    for sql, params in lookups:
        plan = _plan(server.database, sql, params)
        text = "\n".join(plan)
        assert not any(f"Seq Scan on {t}" in text for t in CATALOG_TABLES), (sql, plan)
        assert not any(line.startswith("SCAN") for line in plan), (sql, plan)
        assert "Index" in text or "INDEX" in text, (sql, plan)


def test_resolution_by_id_and_name_together_uses_an_index_for_each(alice, server, catalog):
    with count_queries(server.database) as counter:
        alice.patch(department_ids=[catalog.departments["Sales"]], departments=["Engineering"])
    (sql, params), *_ = _catalog_lookups(counter)
    text = "\n".join(_plan(server.database, sql, params))
    if isinstance(server.database, peewee.PostgresqlDatabase):
        assert "department_pkey" in text and "department_name_key" in text, text
    else:
        assert "MULTI-INDEX OR" in text, text


VALUE_TABLES = ("draft_name", "simulation_position")


def test_a_drafts_value_resources_are_read_by_primary_key_not_by_owner(alice, server, catalog):
    # With `owner = ?` in the statement SQLite chose the owner index and read every resource
    # the owner ever created; the owner is now checked on the rows found by primary key.
    positions = [
        draft_pb2.DraftSimulationPositionValue(simulation="Onboarding", title=f"Lead {k}")
        for k in range(10)  # with one id in `IN (...)` SQLite chose the primary key anyway
    ]
    draft_id = alice.patch(
        name="n", simulations=["Onboarding"], simulation_positions=positions
    ).draft_id
    for _ in range(3):  # more resources of the same owner, which a read must not visit
        alice.patch(name="other", simulations=["Onboarding"], simulation_positions=positions)
    forget_form_cache(draft_id)  # read from its links, as a draft stored before 0006
    with count_queries(server.database) as counter:
        alice.get(draft_id)
    lookups = [
        (sql, params)
        for sql, params in counter.queries
        if any(f'FROM "{table}"' in sql for table in VALUE_TABLES)
    ]
    assert len(lookups) == len(VALUE_TABLES), counter.statements
    for sql, params in lookups:
        text = "\n".join(_plan(server.database, sql, params))
        assert "owner" not in text, (sql, text)
        assert "autoindex" in text or "_pkey" in text, (sql, text)
