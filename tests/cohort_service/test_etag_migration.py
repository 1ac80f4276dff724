"""Migration 0004: drafts stored before etags get one each, which patches then check."""

from __future__ import annotations

import re
import uuid

import grpc
import pytest
from playhouse.migrations import Runner

from cohort_service.server import SERVICE
from shared.db import apply_migrations, open_database
from shared.server import close_store
from tests.cohort_service.support import Client
from tests.support import bearer, serve


def test_stored_drafts_get_a_distinct_etag_each_that_patches_check(database_url):
    database = open_database(database_url)
    drafts = [uuid.uuid4() for _ in range(3)]
    try:
        Runner(database, directory=str(SERVICE.migrations)).up(target="0003_draft_form_bytes")
        p = database.param
        for draft_id in drafts:
            database.execute_sql(
                "INSERT INTO draft (id, owner, state, revision, created_at, update_time) "
                f"VALUES ({p}, 'user:alice', 1, 1, '2026-01-01', '2026-01-01')",
                (draft_id.hex,),
            )

        assert (
            apply_migrations(database, SERVICE.migrations)[0] == "0004_draft_etag"
        )  # then later ones
        etags = [row[0] for row in database.execute_sql("SELECT etag FROM draft").fetchall()]
    finally:
        close_store(database)

    assert len(set(etags)) == 3 and all(re.fullmatch("W/[0-9a-f]{16}", e) for e in etags)
    with serve(SERVICE, database_url) as server:
        alice = Client(server, bearer("user:alice"))
        etag = alice.get(str(drafts[0])).etag
        with pytest.raises(grpc.RpcError) as caught:
            alice.patch(draft_id=str(drafts[0]), name="Q1", etag="W/0")
        assert caught.value.code() == grpc.StatusCode.ABORTED
        assert alice.patch(draft_id=str(drafts[0]), name="Q1", etag=etag).form_state.etag != etag
