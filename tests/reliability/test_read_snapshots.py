"""A read that takes several statements answers from one snapshot on PostgreSQL.

READ COMMITTED gives each statement a snapshot of its own: a read RPC that loads a row and
then its children (a draft, then its datasets or links) can mix a concurrent write's before
and after, answering a state that never existed. Each test holds an ACCESS EXCLUSIVE lock on
the child table from a connection of its own, so that the read provably waits between its
statements (pg_blocking_pids), and changes the parent and its children in that connection
before it lets the read go on.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
from google.protobuf import field_mask_pb2

from cohort_service.server import SERVICE as COHORT
from report_service.server import SERVICE as REPORT
from report_service.v1 import report_pb2
from tests.cohort_service.support import Client as CohortClient
from tests.conftest import POSTGRES_URL
from tests.reliability.races import Served, served_on_postgres, until, waiting
from tests.report_service.support import Client
from tests.support import bearer

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def reports(postgres_admin) -> Iterator[Served]:
    with served_on_postgres(postgres_admin, REPORT, "snap_report") as served:
        yield served


@pytest.fixture(scope="module")
def cohorts(postgres_admin) -> Iterator[Served]:
    with served_on_postgres(postgres_admin, COHORT, "snap_cohort") as served:
        yield served


@contextlib.contextmanager
def _table_locked(schema: str, table: str) -> Iterator[object]:
    """A cursor of the test's own transaction holding ACCESS EXCLUSIVE on table; committed
    when the block ends."""
    connection = psycopg2.connect(POSTGRES_URL, application_name=f"snap-{uuid.uuid4().hex}")
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'SET search_path TO "{schema}"')
            cursor.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
            yield cursor
        connection.commit()
    finally:
        connection.close()


def _read_across_a_write(served: Served, table: str, read: Callable, write: Callable):
    """read()'s answer, read having waited on table while write(cursor) changed and committed."""
    with ThreadPoolExecutor(1) as pool:
        with _table_locked(served.schema, table) as cursor:
            answer = pool.submit(read)
            assert until(lambda: answer.done() or waiting(served.admin, served.application_name))
            assert not answer.done(), "the read did not wait on the test's lock"
            write(cursor)
        return answer.result(timeout=30)


def test_get_report_draft_answers_its_name_and_datasets_from_one_snapshot(reports):
    alice = Client.of(reports.running, "user:alice")
    original = f"team:snap-{uuid.uuid4().hex[:10]}"
    alice.create(id=original, datasets=[report_pb2.ReportDataset(dataset_id="old")])
    draft = alice.call("EditReport", id=original).id
    alice.call(
        "UpdateReport",
        report=report_pb2.Report(id=draft, name="Old"),
        update_mask=field_mask_pb2.FieldMask(paths=["name"]),
    )

    def put(cursor) -> None:  # what one PutReportDraft of a new name and datasets writes
        cursor.execute("UPDATE report SET name = 'New' WHERE id = %s", (draft,))
        cursor.execute("DELETE FROM report_dataset WHERE report_id = %s", (draft,))
        cursor.execute(
            "INSERT INTO report_dataset (report_id, dataset_id, alias, position)"
            " VALUES (%s, 'new', '', 0)",
            (draft,),
        )

    seen = _read_across_a_write(
        reports, "report_dataset", lambda: alice.call("GetReportDraft", id=original), put
    )

    datasets = tuple(dataset.dataset_id for dataset in seen.datasets)
    # was ("Old", ("new",)): the draft's row before the put, its datasets after it
    assert (seen.name, datasets) in {("Old", ("old",)), ("New", ("new",))}


def test_get_cohort_draft_answers_its_etag_and_proposals_from_one_snapshot(cohorts):
    # The form itself comes from the draft row in one statement (cohort_service.form_cache);
    # a draft with staged proposals is read in two: the row, then its proposals.
    alice = CohortClient(cohorts.running, bearer("user:alice"))
    draft_id = alice.patch(name="Named").draft_id
    alice.patch(draft_id=draft_id, description="d", soft=True, idempotency_key="snap-1")
    etag = alice.get(draft_id).etag

    def reject(cursor) -> None:  # what a reject of the proposal writes
        cursor.execute("UPDATE proposal SET decision = 2 WHERE draft_id = %s", (draft_id,))
        cursor.execute(
            "UPDATE draft SET etag = 'W/rejected', staged_proposals = 0 WHERE id = %s",
            (draft_id,),
        )

    seen = _read_across_a_write(cohorts, "proposal", lambda: alice.get(draft_id), reject)

    proposals = tuple(p.idempotency_key for p in seen.proposals)
    # mixed would be the etag before the reject without the proposal it still listed
    assert (seen.etag, proposals) in {(etag, ("snap-1",)), ("W/rejected", ())}
    assert seen.name.value == "Named"
