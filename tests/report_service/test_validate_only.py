"""validate_only (AIP-163): every check and hook runs, the real call's answer comes back, and every
table stays byte for byte as it was."""

from __future__ import annotations

import uuid

import grpc
import pytest

from report_service.v1 import report_pb2
from tests.report_service.support import WRITES, Client
from tests.support import failure, snapshot

ORIGINAL = "team:sales-dashboard"  # the original of support.WRITES
# What the service stamps anew on each call: times, and the etag (random per change).
_STAMPED = ("created_at", "updated_at", "defn_updated_at", "expire_time", "etag")


def _timeless(response):
    """response without what the service stamps (a real call made later differs there)."""
    copy = type(response)()
    copy.CopyFrom(response)
    report = {"PutReportDraftResponse": "report", "RebaseReportDraftResponse": "draft"}.get(
        copy.DESCRIPTOR.name
    )
    report = getattr(copy, report) if report else copy
    if report.DESCRIPTOR.name == "Report":
        for name in _STAMPED:
            report.ClearField(name)
    return copy


def _answer(client: Client, rpc: str, **fields):
    try:
        return client.call(rpc, **fields)
    except grpc.RpcError as error:
        found = failure(error)
        return (found.code, found.reason, found.violations)


@pytest.mark.parametrize("rpc", sorted(WRITES))
def test_validate_only_answers_as_the_call_would_and_changes_no_table(alice, server, rpc):
    alice.create()
    fields = WRITES[rpc](alice.call("EditReport", id=ORIGINAL).id)
    before = snapshot(server.database)

    checked = alice.call(rpc, validate_only=True, **fields)

    assert snapshot(server.database) == before
    assert _timeless(checked) == _timeless(alice.call(rpc, **fields))


@pytest.mark.parametrize(
    ("rpc", "fields"),
    [
        ("CommitReportDraft", {"id": ORIGINAL}),  # no draft
        ("EditReport", {"id": "team:missing"}),
        ("CreateReport", {"report": report_pb2.Report(id="team:x", type="t", name="")}),
        ("UpdateReport", {"report": report_pb2.Report(id=ORIGINAL, name="x" * 201)}),
    ],
)
def test_validate_only_refuses_what_the_call_refuses_with_the_same_error(
    alice, server, rpc, fields
):
    alice.create()
    before = snapshot(server.database)
    checked = _answer(alice, rpc, validate_only=True, **fields)
    assert isinstance(checked, tuple), checked
    assert snapshot(server.database) == before
    assert _answer(alice, rpc, **fields) == checked


def test_validate_only_creating_a_draft_shows_it_and_stores_nothing(alice, bob, server):
    alice.create()
    before = snapshot(server.database)
    draft = bob.call("EditReport", id=ORIGINAL, validate_only=True)
    assert (draft.owner_id, draft.editing_id) == ("user:bob", ORIGINAL)
    assert snapshot(server.database) == before
    with pytest.raises(grpc.RpcError) as caught:
        bob.call("GetReportDraft", id=ORIGINAL)
    assert failure(caught.value).reason == "DRAFT_NOT_FOUND"


def test_validate_only_remembers_no_request_id_but_replays_one_already_remembered(alice, server):
    alice.create()
    alice.call("EditReport", id=ORIGINAL)
    rid = str(uuid.uuid4())
    before = snapshot(server.database)

    checked = alice.call("CommitReportDraft", id=ORIGINAL, request_id=rid, validate_only=True)
    assert snapshot(server.database) == before  # no request_record row either

    committed = alice.call("CommitReportDraft", id=ORIGINAL, request_id=rid)  # runs: not a replay
    assert _timeless(committed) == _timeless(checked)
    after = snapshot(server.database)
    again = alice.call("CommitReportDraft", id=ORIGINAL, request_id=rid, validate_only=True)
    assert again == committed
    assert snapshot(server.database) == after


COMMITTING_DRIVER = """
    class Driver:
        def after_commit_draft(self, original, draft, changes):
            changes["name"] = "Renamed by the driver"
"""
REFUSING_DRIVER = """
    class Driver:
        def before_create_draft(self, original, draft):
            raise RuntimeError("no drafts today")

        def before_discard_draft(self, draft):
            raise RuntimeError("keep every draft")

        def after_commit_draft(self, original, draft, changes):
            raise RuntimeError("the renderer refused")
"""


def test_validate_only_runs_the_drivers_hooks_and_keeps_what_they_change(serve_with_driver):
    with serve_with_driver(COMMITTING_DRIVER) as server:
        alice = Client.of(server, "user:alice")
        alice.create()
        alice.call("EditReport", id=ORIGINAL)
        before = snapshot(server.database)
        checked = alice.call("CommitReportDraft", id=ORIGINAL, validate_only=True)
        assert checked.name == "Renamed by the driver"
        assert snapshot(server.database) == before


@pytest.mark.parametrize(
    ("rpc", "fields"),
    [
        ("CommitReportDraft", {"id": ORIGINAL}),
        ("DiscardReportDraft", {"id": ORIGINAL}),
        ("DeleteReport", {"id": ORIGINAL}),
        ("PutReportDraft", {"id": ORIGINAL}),
    ],
)
def test_validate_only_with_a_driver_that_raises_fails_as_the_call_and_changes_nothing(
    serve_with_driver, rpc, fields
):
    with serve_with_driver(REFUSING_DRIVER) as server:
        alice = Client.of(server, "user:alice")
        alice.create()
        server.database.execute_sql(  # a draft made before the driver refused them
            "INSERT INTO report SELECT 'user:alice:sales-dashboard-draft', type, name, defn, "
            "template_id, datasource_id, query_id, settings, enable_filter, snapshot_enabled, "
            "snapshot_schedule, snapshot_retain_count, 'user:alice', id, created_at, "
            "updated_at, defn_updated_at, 'W/0123456789abcdef', etag FROM report "
            "WHERE id = 'team:sales-dashboard'"
        )
        before = snapshot(server.database)
        checked = _answer(alice, rpc, validate_only=True, **fields)
        assert checked[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "DRIVER_FAILED")
        assert snapshot(server.database) == before
        assert _answer(alice, rpc, **fields) == checked
