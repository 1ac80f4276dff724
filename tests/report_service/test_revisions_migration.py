"""Migration 0003: reports stored before etags get one each, and originals a first revision."""

from __future__ import annotations

import re

import grpc
import pytest
from playhouse.migrations import Runner

from report_service.server import SERVICE
from report_service.v1 import report_pb2
from shared.db import apply_migrations, open_database
from shared.server import close_store
from tests.report_service.support import Client
from tests.report_service.test_draft_id_migration import _insert
from tests.support import serve

ORIGINAL, DRAFT = "team:old", "user:bob:old-draft"


def test_stored_reports_get_etags_and_originals_a_first_revision_of_what_they_hold(
    database_url,
):
    database = open_database(database_url)
    try:
        Runner(database, directory=str(SERVICE.migrations)).up(target="0002_distinct_draft_ids")
        _insert(database, ORIGINAL, "user:alice", None)
        _insert(database, "team:other", "user:alice", None)
        _insert(database, DRAFT, "user:bob", ORIGINAL)
        p = database.param
        for position, dataset in enumerate(("orders", "customers")):
            database.execute_sql(
                "INSERT INTO report_dataset (report_id, dataset_id, alias, position) "
                f"VALUES ({p}, {p}, 'a', {p})",
                (ORIGINAL, dataset, position),
            )

        applied = apply_migrations(database, SERVICE.migrations)
        assert applied[0] == "0003_etags_and_revisions"  # and the later ones
        etags = dict(database.execute_sql("SELECT id, etag FROM report").fetchall())
    finally:
        close_store(database)

    assert len(set(etags.values())) == 3
    assert all(re.fullmatch("W/[0-9a-f]{16}", etag) for etag in etags.values())
    with serve(SERVICE, database_url, draft_ttl=0) as server:  # rows from January
        alice, bob = Client.of(server, "user:alice"), Client.of(server, "user:bob")
        original = alice.call("GetReport", id=ORIGINAL)
        (first,) = alice.call("ListReportRevisions", report_id=ORIGINAL).revisions
        assert first.reason == report_pb2.ReportRevision.REASON_FIRST_RECORDED
        assert first.actor_id == "" and first.snapshot == original
        assert [d.dataset_id for d in first.snapshot.datasets] == ["orders", "customers"]
        assert len(alice.call("ListReportRevisions", report_id="team:other").revisions) == 1
        # A draft made before etags has no base: it reads as outdated, and a rebase keeps it.
        draft = bob.call("GetReportDraft", id=ORIGINAL)
        assert (draft.original_etag, draft.outdated) == ("", True)
        rebased = bob.call("RebaseReportDraft", id=ORIGINAL)
        assert rebased.draft.original_etag == original.etag and not rebased.draft.outdated
        assert list(rebased.conflicts) == ["name", "datasets"]  # as inserted, they differ
        with pytest.raises(grpc.RpcError):  # the migrated etag is checked like any other
            alice.call("DeleteReport", id=ORIGINAL, etag="W/0")
        alice.call("DeleteReport", id=ORIGINAL, etag=original.etag)
