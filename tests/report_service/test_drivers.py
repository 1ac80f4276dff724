"""Report drivers: found by entry point, their hooks shape drafts, a refusal changes nothing.

Each test installs a real distribution (a `*.dist-info` with `entry_points.txt`, and the
driver's module) in a temporary folder on sys.path, then starts the server that discovers it.
"""

from __future__ import annotations

import sys

import grpc
import pytest
from google.protobuf import field_mask_pb2

from report_service.v1 import report_pb2
from tests.report_service.support import Client, as_dict, struct
from tests.support import RunningService, failure, snapshot

ORIGINAL = "team:sales-dashboard"
JOHNS_DRAFT = "user:john.doe:sales-dashboard-draft"


def _john(server: RunningService) -> Client:
    return Client.of(server, "user:john.doe")


REFUSING_DRIVER = """
    class Driver:
        def before_create_draft(self, original, draft):
            if original.name == "Frozen":
                raise RuntimeError("frozen dashboards cannot be drafted")

        def before_discard_draft(self, draft):
            raise RuntimeError("this dashboard's drafts must be committed")

        def after_commit_draft(self, original, draft, changes):
            raise ValueError("the dashboard renderer rejected the new definition")
"""


def test_a_driver_found_by_entry_point_shapes_new_drafts(serve_with_driver):
    source = """
        class Driver:
            def before_create_draft(self, original, draft):
                draft.defn["draftOf"] = original.id
                draft.snapshot.enabled = False
    """
    with serve_with_driver(source) as server:
        john = _john(server)
        john.create()
        john.create(id="team:table", type="table")

        draft = john.call("EditReport", id=ORIGINAL)
        table_draft = john.call("EditReport", id="team:table")

    assert as_dict(draft)["defn"] == {"visuals": [{"kind": "bar"}], "draftOf": ORIGINAL}
    assert draft.snapshot.enabled is False
    assert "draftOf" not in as_dict(table_draft)["defn"]  # a type without a driver


def test_a_driver_may_be_an_object_instead_of_a_class(serve_with_driver):
    source = """
        class _Driver:
            def before_create_draft(self, original, draft):
                draft.name = original.name + " (draft)"

        driver = _Driver()
    """
    with serve_with_driver(source, attribute="driver") as server:
        john = _john(server)
        john.create()

        response = john.call("PutReportDraft", id=ORIGINAL)

    assert response.report.name == "Sales Dashboard (draft)"


def test_commit_rolls_back_when_driver_raises(serve_with_driver):
    with serve_with_driver(REFUSING_DRIVER) as server:
        john, alice = _john(server), Client.of(server, "user:alice")
        john.create()
        john.call("EditReport", id=ORIGINAL)
        john.call(
            "UpdateReport",
            report=report_pb2.Report(id=JOHNS_DRAFT, name="New", defn=struct({"v": 2})),
        )
        for client in (john, alice):
            client.call("UpdateUserReportSettings", report_id=ORIGINAL, settings=struct({"z": 1}))
        before = snapshot(server.database)

        with pytest.raises(grpc.RpcError) as caught:
            john.call("CommitReportDraft", id=ORIGINAL)

        assert snapshot(server.database) == before
    error = failure(caught.value)
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.message == "the dashboard renderer rejected the new definition"
    assert (error.reason, error.metadata) == (
        "DRIVER_FAILED",
        {"type": "dashboard", "hook": "after_commit_draft"},
    )


def test_edit_report_creates_no_draft_when_before_create_draft_raises(serve_with_driver):
    with serve_with_driver(REFUSING_DRIVER) as server:
        john = _john(server)
        john.create(name="Frozen")
        before = snapshot(server.database)

        for rpc in ("EditReport", "PutReportDraft"):
            with pytest.raises(grpc.RpcError) as caught:
                john.call(rpc, id=ORIGINAL)
            error = failure(caught.value)
            assert error.code == grpc.StatusCode.FAILED_PRECONDITION
            assert error.message == "frozen dashboards cannot be drafted"

        assert snapshot(server.database) == before


def test_discard_and_delete_change_nothing_when_before_discard_draft_raises(serve_with_driver):
    with serve_with_driver(REFUSING_DRIVER) as server:
        john = _john(server)
        john.create()
        john.call("EditReport", id=ORIGINAL)
        before = snapshot(server.database)

        for rpc, report_id in (
            ("DiscardReportDraft", ORIGINAL),
            ("DeleteReport", JOHNS_DRAFT),
            ("DeleteReport", ORIGINAL),
        ):
            with pytest.raises(grpc.RpcError) as caught:
                john.call(rpc, id=report_id)
            error = failure(caught.value)
            assert error.code == grpc.StatusCode.FAILED_PRECONDITION, rpc
            assert error.message == "this dashboard's drafts must be committed"

        assert snapshot(server.database) == before


def test_after_commit_draft_may_change_what_is_committed(serve_with_driver):
    source = """
        class Driver:
            def after_commit_draft(self, original, draft, changes):
                changes.pop("query_id", None)
                return {**changes, "settings": {"committedBy": draft.owner_id}}
    """
    with serve_with_driver(source) as server:
        john = _john(server)
        original = john.create()
        john.call("EditReport", id=ORIGINAL)
        john.call(
            "UpdateReport",
            report=report_pb2.Report(id=JOHNS_DRAFT, query_id="q-1", defn=struct({"v": 2})),
        )

        committed = john.call("CommitReportDraft", id=ORIGINAL)
        (activity,) = john.call("ListReportActivities", report_id=ORIGINAL).activities

    assert committed.query_id == original.query_id
    assert as_dict(committed)["defn"] == {"v": 2}
    assert as_dict(committed)["settings"] == {"committedBy": "user:john.doe"}
    assert as_dict(activity)["details"] == {
        "defn": {"v": 2},
        "settings": {"committedBy": "user:john.doe"},
    }


def test_a_driver_returning_invalid_changes_fails_the_commit_and_changes_nothing(
    serve_with_driver,
):
    source = """
        class Driver:
            def after_commit_draft(self, original, draft, changes):
                return {"name": "x" * 201, "owner_id": "user:mallory"}
    """
    with serve_with_driver(source) as server:
        john = _john(server)
        john.create()
        john.call("EditReport", id=ORIGINAL)
        before = snapshot(server.database)

        with pytest.raises(grpc.RpcError) as caught:
            john.call("CommitReportDraft", id=ORIGINAL)

        assert snapshot(server.database) == before
    error = failure(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DRIVER_FAILED")
    assert sorted(error.fields) == ["changes.name", "changes.owner_id"]


def test_before_discard_draft_sees_every_draft_deleted_with_its_original(serve_with_driver):
    source = """
        DISCARDED = []

        class Driver:
            def before_discard_draft(self, draft):
                DISCARDED.append((draft.id, [d.dataset_id for d in draft.datasets]))
    """
    with serve_with_driver(source) as server:
        john, alice = _john(server), Client.of(server, "user:alice")
        john.create()
        john.call("EditReport", id=ORIGINAL)
        alice.call("EditReport", id=ORIGINAL)
        alice.call(
            "UpdateReport",
            report=report_pb2.Report(id="user:alice:sales-dashboard-draft"),
            update_mask=field_mask_pb2.FieldMask(paths=["datasets"]),
        )

        john.call("DeleteReport", id=ORIGINAL)

        (module,) = [m for name, m in sys.modules.items() if name.startswith("report_driver_")]
        assert sorted(module.DISCARDED) == [
            ("user:alice:sales-dashboard-draft", []),
            (JOHNS_DRAFT, ["orders", "customers"]),
        ]
