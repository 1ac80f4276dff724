"""CreateReport, GetReport, ListReports, UpdateReport and DeleteReport on originals."""

from __future__ import annotations

import re

import grpc
import pytest
from google.protobuf import field_mask_pb2

from report_service.v1 import report_pb2
from tests.report_service.support import as_dict, struct, valid_report
from tests.support import failure, snapshot, without_events


def _mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def test_create_report_returns_the_report_with_its_output_fields(john):
    created = john.create()

    assert as_dict(created) == {
        **as_dict(valid_report()),
        "ownerId": "user:john.doe",
        "createdAt": as_dict(created)["createdAt"],
        "updatedAt": as_dict(created)["createdAt"],
        "defnUpdatedAt": as_dict(created)["createdAt"],
        "links": {"self": {"href": "/api/reports/team:sales-dashboard"}},
        "etag": created.etag,
    }
    assert re.fullmatch("W/[0-9a-f]{16}", created.etag)
    assert created.editing_id == ""
    assert john.call("GetReport", id=created.id) == created


def test_create_report_keeps_an_unset_id_apart_from_an_empty_one(john):
    created = john.create(template_id="", query_id=None, defn=None, settings=None)

    assert created.HasField("template_id") and created.template_id == ""
    assert not created.HasField("query_id")
    assert as_dict(created)["defn"] == {} and as_dict(created)["settings"] == {}


def test_create_report_refuses_a_taken_id_with_already_exists(john, alice, server):
    john.create()
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as caught:
        alice.create(name="Another")

    error = failure(caught.value)
    assert error.code == grpc.StatusCode.ALREADY_EXISTS
    assert (error.reason, error.domain) == ("REPORT_ALREADY_EXISTS", "report-service")
    assert snapshot(server.database) == before


def test_get_report_returns_an_original_to_every_caller(john, alice):
    created = john.create()

    assert alice.call("GetReport", id=created.id) == created


@pytest.mark.parametrize("size", [1, 20, 2000], ids=["small", "medium", "large"])
def test_get_report_returns_defn_and_settings_as_created_however_often_it_is_read(john, size):
    # Small texts are served from mapping's cache of serialized Structs, large ones parsed.
    defn = {"visuals": [{"kind": "bar", "n": n, "on": n % 2 == 0} for n in range(size)]}
    settings = {"theme": {"dark": True, "accent": None}, "tags": ["a", 1.5]}
    created = john.create(defn=struct(defn), settings=struct(settings))
    for _ in range(3):
        report = john.call("GetReport", id=created.id)
        assert as_dict(report.defn) == as_dict(created.defn) == as_dict(struct(defn))
        assert as_dict(report.settings) == as_dict(struct(settings))
        assert report.created_at == created.created_at
        assert report.enable_filter is created.enable_filter


def test_list_reports_returns_originals_only_in_id_order_page_by_page(john, alice):
    ids = [f"team:report-{n}" for n in (3, 1, 4, 5, 2)]
    for report_id in ids:
        john.create(id=report_id)
    alice.call("EditReport", id="team:report-1")

    pages, token = [], ""
    while True:
        page = john.call("ListReports", page_size=2, page_token=token)
        pages.append([report.id for report in page.reports])
        token = page.next_page_token
        if not token:
            break

    assert pages == [
        ["team:report-1", "team:report-2"],
        ["team:report-3", "team:report-4"],
        ["team:report-5"],
    ]
    listed = john.call("ListReports").reports
    assert [len(report.datasets) for report in listed] == [2] * 5


def test_update_report_replaces_only_the_fields_the_mask_names(john):
    created = john.create()

    updated = john.call(
        "UpdateReport",
        report=report_pb2.Report(
            id=created.id, name="Renamed", query_id="q-9", enable_filter=False
        ),
        update_mask=_mask("name", "enable_filter"),
    )

    assert (updated.name, updated.enable_filter) == ("Renamed", False)
    assert not updated.HasField("query_id")
    assert (updated.defn, updated.datasets, updated.snapshot) == (
        created.defn,
        created.datasets,
        created.snapshot,
    )
    assert updated.updated_at.ToDatetime() > created.updated_at.ToDatetime()
    assert john.call("GetReport", id=created.id) == updated


def test_update_report_without_a_mask_replaces_the_fields_the_report_populates(john):
    created = john.create()

    updated = john.call(
        "UpdateReport",
        report=report_pb2.Report(id=created.id, defn=struct({"visuals": []}), query_id="q-1"),
    )

    assert as_dict(updated)["defn"] == {"visuals": []}
    assert updated.query_id == "q-1"
    assert (updated.name, updated.template_id, updated.enable_filter) == (
        created.name,
        created.template_id,
        True,
    )


def test_update_report_clears_a_named_field_left_unset(john):
    created = john.create()

    updated = john.call(
        "UpdateReport",
        report=report_pb2.Report(id=created.id),
        update_mask=_mask("template_id", "defn", "datasets", "snapshot"),
    )

    assert not updated.HasField("template_id")
    assert as_dict(updated)["defn"] == {}
    assert list(updated.datasets) == []
    assert updated.snapshot == report_pb2.SnapshotSettings()


def test_update_report_with_the_star_mask_replaces_every_editable_field(john):
    created = john.create()
    replacement = valid_report(
        name="Replaced",
        defn=struct({"v": 2}),
        template_id=None,
        datasource_id="pg",
        query_id="q",
        settings=struct({}),
        enable_filter=False,
        datasets=[report_pb2.ReportDataset(dataset_id="x")],
        snapshot=report_pb2.SnapshotSettings(schedule="@daily"),
    )

    updated = john.call("UpdateReport", report=replacement, update_mask=_mask("*"))

    for name in ("name", "defn", "datasource_id", "query_id", "settings", "datasets", "snapshot"):
        assert getattr(updated, name) == getattr(replacement, name), name
    assert not updated.HasField("template_id") and updated.enable_filter is False
    assert (updated.type, updated.owner_id, updated.created_at) == (
        created.type,
        created.owner_id,
        created.created_at,
    )


def test_update_report_moves_defn_updated_at_only_when_defn_changes(john):
    created = john.create()

    renamed = john.call("UpdateReport", report=report_pb2.Report(id=created.id, name="Renamed"))
    redefined = john.call(
        "UpdateReport", report=report_pb2.Report(id=created.id, defn=struct({"visuals": []}))
    )

    assert renamed.defn_updated_at == created.defn_updated_at
    assert redefined.defn_updated_at == redefined.updated_at
    assert redefined.defn_updated_at.ToDatetime() > created.defn_updated_at.ToDatetime()


def test_any_writer_may_update_an_original_someone_else_created(john, alice):
    created = john.create()

    updated = alice.call("UpdateReport", report=report_pb2.Report(id=created.id, name="Alice's"))

    assert (updated.name, updated.owner_id) == ("Alice's", "user:john.doe")


def test_delete_report_deletes_its_drafts_datasets_activities_settings_and_revisions(
    john, alice, server
):
    created = john.create()
    john.call("EditReport", id=created.id)
    john.call("CommitReportDraft", id=created.id)
    alice.call("EditReport", id=created.id)
    alice.call("UpdateUserReportSettings", report_id=created.id, settings=struct({"a": 1}))

    john.call("DeleteReport", id=created.id)

    # The events stay until their retention ends: a watcher resumes up to REPORT_DELETED.
    tables = without_events(snapshot(server.database))
    assert {name: rows for name, rows in tables.items() if name != "schema_migration"} == {
        "report": [],
        "report_dataset": [],
        "activity": [],
        "user_report_settings": [],
        "request_record": [],  # no call gave a request_id
        "report_revision": [],
    }
    with pytest.raises(grpc.RpcError) as caught:
        alice.call("GetReportDraft", id=created.id)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_delete_report_given_the_callers_draft_discards_only_the_draft(john):
    created = john.create()
    draft = john.call("EditReport", id=created.id)

    john.call("DeleteReport", id=draft.id)

    assert john.call("GetReport", id=created.id) == created
    with pytest.raises(grpc.RpcError) as caught:
        john.call("GetReport", id=draft.id)
    assert failure(caught.value).reason == "REPORT_NOT_FOUND"
