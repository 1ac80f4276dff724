"""Migration 0002: drafts stored under the old draft id rule move to their distinct ids."""

from __future__ import annotations

from datetime import datetime

import grpc
import pytest
from playhouse.migrations import Runner

from report_service.ids import draft_id
from report_service.server import SERVICE
from shared.db import apply_migrations, open_database
from shared.server import close_store
from tests.support import failure, snapshot

_NOW = datetime(2026, 1, 1)


def _insert(database, report_id: str, owner: str, editing: str | None, **later: str) -> None:
    """A report row as 0001 made them; later: columns of later migrations (etag=...)."""
    p = database.param
    names = "".join(f", {name}" for name in later)
    values = "".join(f", {p}" for _ in later)
    database.execute_sql(
        "INSERT INTO report (id, type, name, defn, template_id, datasource_id, query_id, "
        "settings, enable_filter, snapshot_enabled, snapshot_schedule, snapshot_retain_count, "
        f"owner_id, editing_id, created_at, updated_at, defn_updated_at{names}) VALUES "
        f"({p}, 'dashboard', {p}, '{{}}', NULL, NULL, NULL, '{{}}', {p}, {p}, '', 0, {p}, {p}, "
        f"{p}, {p}, {p}{values})",
        (
            report_id,
            f"name of {report_id}",
            False,
            False,
            owner,
            editing,
            _NOW,
            _NOW,
            _NOW,
            *later.values(),
        ),
    )


def _rows(database, sql: str) -> set[tuple]:
    return {tuple(row) for row in database.execute_sql(sql).fetchall()}


def test_drafts_under_the_old_rule_move_to_their_distinct_ids(database_url):
    database = open_database(database_url)
    try:
        Runner(database, directory=str(SERVICE.migrations)).up(target="0001_initial")
        originals = ("team:sales", "org:mkt", "x:bob:sales", "team:q1:sales", "team:ok")
        originals += ("team:~org%3Ax", "org:x")
        for original in originals:
            _insert(database, original, "user:alice", None)
        _insert(database, "user:carol:~team%3Aq1%3Asales-draft", "user:alice", None)  # squatter
        legacy = {  # (owner, original) → the id the old rule gave
            ("user:bob", "org:mkt"): "user:bob:mkt-draft",
            # the id user:bob's draft of team:sales has now
            ("user", "x:bob:sales"): "user:bob:sales-draft",
            ("user:carol", "team:q1:sales"): "user:carol:q1:sales-draft",
            ("user:dan", "team:ok"): "user:dan:ok-draft",
            # each new id is the other's old one: the first to move frees the second's
            ("user:eve", "org:x"): "user:eve:x-draft",
            ("user:eve", "team:~org%3Ax"): "user:eve:~org%3Ax-draft",
        }
        for (owner, original), old in legacy.items():
            _insert(database, old, owner, original)
        p = database.param
        database.execute_sql(
            "INSERT INTO report_dataset (report_id, dataset_id, alias, position) "
            f"VALUES ({p}, 'orders', 'o', 0)",
            ("user:bob:mkt-draft",),
        )
        database.execute_sql(
            "INSERT INTO user_report_settings (report_id, user_id, settings, updated_at) "
            f"VALUES ({p}, 'user:bob', '{{}}', {p})",
            ("user:bob:mkt-draft", _NOW),
        )

        applied = apply_migrations(database, SERVICE.migrations)
        assert applied[0] == "0002_distinct_draft_ids"  # and the later ones

        drafts = _rows(
            database, "SELECT id, owner_id, editing_id FROM report WHERE editing_id IS NOT NULL"
        )
        assert drafts == {
            (draft_id("user:bob", "org:mkt"), "user:bob", "org:mkt"),
            (draft_id("user", "x:bob:sales"), "user", "x:bob:sales"),
            (draft_id("user:eve", "org:x"), "user:eve", "org:x"),
            (draft_id("user:eve", "team:~org%3Ax"), "user:eve", "team:~org%3Ax"),
            # its new id is a squatting original's: it keeps the old one
            ("user:carol:q1:sales-draft", "user:carol", "team:q1:sales"),
            ("user:dan:ok-draft", "user:dan", "team:ok"),  # the seed's form: unchanged
        }
        moved = draft_id("user:bob", "org:mkt")
        assert _rows(database, "SELECT report_id, dataset_id FROM report_dataset") == {
            (moved, "orders")
        }
        assert _rows(database, "SELECT report_id, user_id FROM user_report_settings") == {
            (moved, "user:bob")
        }
        assert _rows(database, "SELECT id FROM report WHERE editing_id IS NULL") == {
            (original,) for original in (*originals, "user:carol:~team%3Aq1%3Asales-draft")
        }
    finally:
        close_store(database)


def test_an_original_stored_with_a_draft_id_before_the_reservation_fails_that_edit(
    server, alice, bob
):
    alice.create(id="team:mkt")
    with server.database.connection_context():
        _insert(server.database, "user:bob:mkt-draft", "user:alice", None, etag="W/old")
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as caught:
        bob.call("EditReport", id="team:mkt")

    error = failure(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DRAFT_ID_TAKEN")
    assert error.metadata == {"draft_id": "user:bob:mkt-draft"}
    assert snapshot(server.database) == before
