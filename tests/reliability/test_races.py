"""The audit's lost writes and INTERNALs under concurrency, each interleaving forced on PostgreSQL.

PostgreSQL runs READ COMMITTED: a write that read a row without locking it can act on what a
concurrent commit, discard or delete has just changed or removed. Each test holds a row lock
from a connection of its own so that call A provably waits in the middle of its transaction
while the conflicting call B starts (tests.reliability.races), then checks that each call
happened wholly before or after the other: no acknowledged write is lost, a write on a row
that went while it waited answers NOT_FOUND, nothing answers INTERNAL.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import psycopg2
import pytest
from google.protobuf import field_mask_pb2

from cohort_service.server import SERVICE as COHORT
from cohort_service.v1 import draft_service_pb2, draft_service_pb2_grpc
from report_service.drafts import draft_id
from report_service.models import Report
from report_service.server import SERVICE as REPORT
from report_service.v1 import report_pb2
from tests.conftest import POSTGRES_URL
from tests.reliability.races import (
    Race,
    Served,
    outcome_of,
    served_on_postgres,
    until,
    waiting,
)
from tests.report_service.support import Client, struct
from tests.support import bearer

pytestmark = pytest.mark.postgres
OK = grpc.StatusCode.OK
NOT_FOUND = grpc.StatusCode.NOT_FOUND


def _race(served: Served, table: str, key: str, first, second) -> Race:
    """first waits on the row table.id = key held by the test while second starts."""
    result = served.race(served.lock(table, "id", key), first, second)
    assert result.forced, "the first call did not wait on the test's lock"
    return result


@pytest.fixture(scope="module")
def reports(postgres_admin) -> Iterator[Served]:
    with served_on_postgres(postgres_admin, REPORT, "race_report") as served:
        yield served


@pytest.fixture(scope="module")
def cohorts(postgres_admin) -> Iterator[Served]:
    with served_on_postgres(postgres_admin, COHORT, "race_cohort") as served:
        yield served


# ---------------------------------------------------------------------------
# report-service
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """An original of alice's with datasets, and alice's draft of it."""

    alice: Client
    original: str
    draft: str


@pytest.fixture
def family(reports) -> Family:
    alice = Client.of(reports.running, "user:alice")
    original = f"team:race-{uuid.uuid4().hex[:10]}"
    alice.create(id=original, name="Before")
    draft = alice.call("EditReport", id=original).id
    alice.call(
        "UpdateReport",
        report=report_pb2.Report(id=draft, defn=struct({"v": "draft"})),
        update_mask=field_mask_pb2.FieldMask(paths=["defn"]),
    )
    return Family(alice, original, draft)


def _put(family: Family, value: str):
    return lambda: family.alice.call(
        "PutReportDraft", id=family.original, draft=report_pb2.ReportDraftInput(defn=struct(value))
    )


def test_a_put_that_waited_on_the_draft_is_published_by_the_commit_behind_it(reports, family):
    put = _put(family, {"v": "put"})
    commit = lambda: family.alice.call("CommitReportDraft", id=family.original)  # noqa: E731
    race = _race(reports, "report", family.draft, put, commit)

    assert (race.first.code, race.second.code) == (OK, OK), race
    published = family.alice.call("GetReport", id=family.original)
    assert dict(published.defn) == {"v": "put"}  # not lost: the commit came after the put


def test_a_put_behind_a_commit_that_removed_the_draft_writes_a_new_draft(reports, family):
    commit = lambda: family.alice.call("CommitReportDraft", id=family.original)  # noqa: E731
    race = _race(reports, "report", family.draft, commit, _put(family, {"v": "put"}))

    assert race.first.code == OK, race
    assert race.second.code == OK, race  # was INTERNAL: ForeignKeyViolation on report_dataset
    assert race.second.response.created
    assert dict(family.alice.call("GetReportDraft", id=family.original).defn) == {"v": "put"}
    assert dict(family.alice.call("GetReport", id=family.original).defn) == {"v": "draft"}


@contextlib.contextmanager
def _draft_inserted_meanwhile(served: Served, original: str, principal: str) -> Iterator[object]:
    """principal's draft of original inserted by a transaction of the test's, committed when
    the block ends: a concurrent call of principal's that created it first."""
    columns = list(Report._meta.columns)
    copied = {"id": "%s", "owner_id": "%s", "editing_id": "id"}
    connection = psycopg2.connect(POSTGRES_URL)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f'INSERT INTO "{served.schema}".report ({", ".join(columns)}) '
                f"SELECT {', '.join(copied.get(column, column) for column in columns)} "
                f'FROM "{served.schema}".report WHERE id = %s',
                (draft_id(principal, original), principal, original),
            )
        yield connection
        connection.commit()
    finally:
        connection.close()


def test_a_put_that_meets_the_draft_a_concurrent_put_created_replaces_it(reports, family):
    bob = Client.of(reports.running, "user:bob")
    with ThreadPoolExecutor(1) as pool:
        with _draft_inserted_meanwhile(reports, family.original, "user:bob"):
            put = pool.submit(
                outcome_of,
                lambda: bob.call(
                    "PutReportDraft",
                    id=family.original,
                    draft=report_pb2.ReportDraftInput(defn=struct({"v": "bob"})),
                ),
            )
            # Bob's insert waits on the test's uncommitted row of the same key.
            assert until(lambda: waiting(reports.admin, reports.application_name) == 1)
        outcome = put.result()

    assert outcome.code == OK, outcome  # was ABORTED: DRAFT_CREATED_CONCURRENTLY
    assert not outcome.response.created
    assert dict(bob.call("GetReportDraft", id=family.original).defn) == {"v": "bob"}


def _update(report_id: str, **fields) -> tuple[str, dict]:
    mask = field_mask_pb2.FieldMask(paths=list(fields))
    return "UpdateReport", {
        "report": report_pb2.Report(id=report_id, **fields),
        "update_mask": mask,
    }


# (removal, which row it holds, the write racing it): the write waits behind the removal and
# must find its row gone — NOT_FOUND, not INTERNAL, and not OK for a row that is no more.
REMOVALS = {
    "DeleteReport of the original": (lambda f: ("DeleteReport", {"id": f.original}), "original"),
    "DeleteReport of the draft": (lambda f: ("DeleteReport", {"id": f.draft}), "draft"),
    "DiscardReportDraft": (lambda f: ("DiscardReportDraft", {"id": f.original}), "draft"),
    "CommitReportDraft": (lambda f: ("CommitReportDraft", {"id": f.original}), "draft"),
}
WRITES = {
    "UpdateReport of the original": (
        lambda f: _update(f.original, name="N"),
        "original",
    ),
    "UpdateReport of the original's datasets": (
        lambda f: _update(f.original, datasets=[report_pb2.ReportDataset(dataset_id="x")]),
        "original",
    ),
    "UpdateReport of the draft": (
        lambda f: _update(f.draft, name="N"),
        "draft",
    ),
    "UpdateUserReportSettings of the original": (
        lambda f: (
            "UpdateUserReportSettings",
            {"report_id": f.original, "settings": struct({"z": 1})},
        ),
        "original",
    ),
    "UpdateUserReportSettings of the draft": (
        lambda f: (
            "UpdateUserReportSettings",
            {"report_id": f.draft, "settings": struct({"z": 1})},
        ),
        "draft",
    ),
    "PutReportDraft": (
        lambda f: ("PutReportDraft", {"id": f.original, "draft": report_pb2.ReportDraftInput()}),
        "original",
    ),
    "EditReport of another principal": (lambda f: ("EditReport", {"id": f.original}), "original"),
}
CASES = [
    (removal, write)
    for removal, (_, removes) in REMOVALS.items()
    for write, (_, needs) in WRITES.items()
    # the write needs what the removal removes: a deleted original takes its drafts along
    if removes == needs or removes == "original"
]


@pytest.mark.parametrize(("removal", "write"), CASES)
def test_a_write_waiting_behind_the_removal_of_its_row_answers_not_found(
    reports, family, removal, write
):
    bob = Client.of(reports.running, "user:bob")
    removing, held = REMOVALS[removal]
    writing, _ = WRITES[write]
    caller = bob if write.endswith("another principal") else family.alice
    first_rpc, first_fields = removing(family)
    second_rpc, second_fields = writing(family)
    race = _race(
        reports,
        "report",
        family.original if held == "original" else family.draft,
        lambda: family.alice.call(first_rpc, **first_fields),
        lambda: caller.call(second_rpc, **second_fields),
    )

    assert race.first.code == OK, race
    assert race.second.code == NOT_FOUND, race


# ---------------------------------------------------------------------------
# cohort-service
# ---------------------------------------------------------------------------


def test_a_patch_racing_the_rejection_of_the_proposal_that_made_its_draft_keeps_the_draft(
    cohorts,
):
    stub = draft_service_pb2_grpc.CohortDraftServiceStub(cohorts.running.channel)
    metadata = bearer("user:alice")
    key = f"soft-{uuid.uuid4().hex}"
    staged = stub.PatchCohortDraft(
        draft_service_pb2.PatchCohortDraftRequest(name="Proposed", soft=True, idempotency_key=key),
        metadata=metadata,
    )
    draft_id = staged.draft_id
    patch = lambda: stub.PatchCohortDraft(  # noqa: E731
        draft_service_pb2.PatchCohortDraftRequest(draft_id=draft_id, name="Patched"),
        metadata=metadata,
    )
    reject = lambda: stub.PatchCohortDraft(  # noqa: E731
        draft_service_pb2.PatchCohortDraftRequest(
            draft_id=draft_id, idempotency_key=key, accept=False
        ),
        metadata=metadata,
    )
    race = _race(cohorts, "draft", draft_id, patch, reject)

    assert (race.first.code, race.second.code) == (OK, OK), race
    assert race.first.response.message == "draft updated"
    assert race.second.response.message == "proposal rejected; the draft is unchanged"
    kept = stub.GetCohortDraft(
        draft_service_pb2.GetCohortDraftRequest(draft_id=draft_id), metadata=metadata
    )
    assert kept.name.value == "Patched"


# ---------------------------------------------------------------------------
# Etags: two writers with the same etag, the first caught mid-transaction — exactly one wins
# ---------------------------------------------------------------------------

ABORTED = grpc.StatusCode.ABORTED


def _count(served: Served, table: str, report_id: str) -> int:
    with served.admin.cursor() as cursor:
        cursor.execute(
            f'SELECT count(*) FROM "{served.schema}"."{table}" WHERE report_id = %s', (report_id,)
        )
        return cursor.fetchone()[0]


def test_two_updates_with_the_same_etag_one_waiting_on_the_row_only_the_first_applies(
    reports, family
):
    etag = family.alice.call("GetReport", id=family.original).etag
    revisions = _count(reports, "report_revision", family.original)

    def update(name: str):
        request = _update(family.original, name=name)[1]
        request["report"].etag = etag
        return lambda: family.alice.call("UpdateReport", **request)

    race = _race(reports, "report", family.original, update("First"), update("Second"))

    assert (race.first.code, race.second.code) == (OK, ABORTED), race
    assert "etag" in race.second.details
    assert family.alice.call("GetReport", id=family.original).name == "First"
    assert _count(reports, "report_revision", family.original) == revisions + 1


def test_two_commits_with_the_etag_their_drafts_were_made_from_only_the_first_publishes(
    reports, family
):
    bob = Client.of(reports.running, "user:bob")
    bob.call("EditReport", id=family.original)
    bobs = bob.call(
        "PutReportDraft",
        id=family.original,
        draft=report_pb2.ReportDraftInput(defn=struct({"v": "bob"})),
    ).report
    alices = family.alice.call("GetReportDraft", id=family.original)
    assert alices.original_etag == bobs.original_etag
    activities = _count(reports, "activity", family.original)

    def commit(client: Client, etag: str):
        return lambda: client.call("CommitReportDraft", id=family.original, etag=etag)

    race = _race(
        reports,
        "report",
        family.original,
        commit(family.alice, alices.original_etag),
        commit(bob, bobs.original_etag),
    )

    assert (race.first.code, race.second.code) == (OK, ABORTED), race
    assert dict(family.alice.call("GetReport", id=family.original).defn) == {"v": "draft"}
    left = bob.call("GetReportDraft", id=family.original)
    assert left.outdated  # now that alice's commit went first
    left.outdated = False
    assert left == bobs  # otherwise untouched
    assert _count(reports, "activity", family.original) == activities + 1


def test_a_rollback_racing_a_commit_with_the_same_etag_loses_and_changes_nothing(reports, family):
    original = family.alice.call("GetReport", id=family.original)
    (revision,) = family.alice.call("ListReportRevisions", report_id=family.original).revisions
    commit = lambda: family.alice.call(  # noqa: E731
        "CommitReportDraft", id=family.original, etag=original.etag
    )
    rollback = lambda: family.alice.call(  # noqa: E731
        "RollbackReport", id=family.original, revision_id=revision.revision_id, etag=original.etag
    )

    race = _race(reports, "report", family.original, commit, rollback)

    assert (race.first.code, race.second.code) == (OK, ABORTED), race
    assert family.alice.call("GetReport", id=family.original) == race.first.response
    assert _count(reports, "report_revision", family.original) == 2


def test_two_cohort_patches_with_the_same_etag_only_the_first_applies(cohorts):
    stub = draft_service_pb2_grpc.CohortDraftServiceStub(cohorts.running.channel)
    metadata = bearer("user:alice")
    created = stub.PatchCohortDraft(
        draft_service_pb2.PatchCohortDraftRequest(name="Before"), metadata=metadata
    )
    etag = created.form_state.etag

    def patch(name: str):
        return lambda: stub.PatchCohortDraft(
            draft_service_pb2.PatchCohortDraftRequest(
                draft_id=created.draft_id, name=name, etag=etag
            ),
            metadata=metadata,
        )

    race = _race(cohorts, "draft", created.draft_id, patch("First"), patch("Second"))

    assert (race.first.code, race.second.code) == (OK, ABORTED), race
    live = stub.GetCohortDraft(
        draft_service_pb2.GetCohortDraftRequest(draft_id=created.draft_id), metadata=metadata
    )
    assert (live.name.value, live.revision) == ("First", 2)
