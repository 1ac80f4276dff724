"""CommitReportDraft: what is copied, what is not, and everything a commit does besides."""

from __future__ import annotations

import threading

import grpc
import pytest
from google.protobuf import field_mask_pb2

from report_service.v1 import report_pb2
from tests.report_service.support import as_dict, struct
from tests.support import failure, snapshot

ORIGINAL = "team:sales-dashboard"
JOHNS_DRAFT = "user:john.doe:sales-dashboard-draft"


def _change_draft(client, draft_id: str, *paths: str, **values) -> report_pb2.Report:
    return client.call(
        "UpdateReport",
        report=report_pb2.Report(id=draft_id, **values),
        update_mask=field_mask_pb2.FieldMask(paths=list(paths)),
    )


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("defn", struct({"visuals": []}), {"visuals": []}),
        ("template_id", "template-9", "template-9"),
        ("datasource_id", "pg-prod", "pg-prod"),
        ("query_id", "q-1", "q-1"),
        ("settings", struct({"theme": "light"}), {"theme": "light"}),
        ("enable_filter", False, False),
        ("name", "Renamed", "Renamed"),
    ],
)
def test_commit_copies_each_committed_field_and_records_it_as_changed(john, field, value, detail):
    original = john.create()
    john.call("EditReport", id=ORIGINAL)
    _change_draft(john, JOHNS_DRAFT, field, **{field: value})

    committed = john.call("CommitReportDraft", id=ORIGINAL)

    assert getattr(committed, field) == value
    for other in ("name", "defn", "template_id", "datasource_id", "query_id", "settings"):
        if other != field:
            assert getattr(committed, other) == getattr(original, other), other
    (activity,) = john.call("ListReportActivities", report_id=ORIGINAL).activities
    assert as_dict(activity)["details"] == {field: detail}


def test_commit_clears_an_id_the_draft_unset(john):
    john.create()
    john.call("EditReport", id=ORIGINAL)
    _change_draft(john, JOHNS_DRAFT, "template_id")

    committed = john.call("CommitReportDraft", id=ORIGINAL)

    assert not committed.HasField("template_id")
    (activity,) = john.call("ListReportActivities", report_id=ORIGINAL).activities
    assert as_dict(activity)["details"] == {"template_id": None}


def test_commit_leaves_the_name_alone_when_the_draft_has_the_same_one(john):
    john.create()
    john.call("EditReport", id=ORIGINAL)
    _change_draft(john, JOHNS_DRAFT, "query_id", query_id="q-1")

    john.call("CommitReportDraft", id=ORIGINAL)

    (activity,) = john.call("ListReportActivities", report_id=ORIGINAL).activities
    assert "name" not in as_dict(activity)["details"]


def test_commit_replaces_the_originals_datasets_with_the_drafts(john):
    john.create()
    john.call("EditReport", id=ORIGINAL)
    datasets = [
        report_pb2.ReportDataset(dataset_id="returns", alias="r"),
        report_pb2.ReportDataset(dataset_id="orders", alias="o2"),
        report_pb2.ReportDataset(dataset_id="stock"),
    ]
    _change_draft(john, JOHNS_DRAFT, "datasets", datasets=datasets)

    committed = john.call("CommitReportDraft", id=ORIGINAL)

    assert list(committed.datasets) == datasets
    assert list(john.call("GetReport", id=ORIGINAL).datasets) == datasets


def test_commit_does_not_copy_snapshot_settings(john):
    original = john.create()
    john.call("EditReport", id=ORIGINAL)
    _change_draft(
        john, JOHNS_DRAFT, "snapshot", snapshot=report_pb2.SnapshotSettings(schedule="@hourly")
    )

    committed = john.call("CommitReportDraft", id=ORIGINAL)

    assert committed.snapshot == original.snapshot


def test_commit_sets_defn_updated_at_and_updated_at_to_the_commit_time(john):
    original = john.create()
    john.call("EditReport", id=ORIGINAL)

    committed = john.call("CommitReportDraft", id=ORIGINAL)

    assert committed.defn_updated_at == committed.updated_at
    assert committed.updated_at.ToDatetime() > original.updated_at.ToDatetime()
    assert committed.created_at == original.created_at
    (activity,) = john.call("ListReportActivities", report_id=ORIGINAL).activities
    assert activity.created_at == committed.updated_at


def test_commit_deletes_the_draft(john):
    john.create()
    john.call("EditReport", id=ORIGINAL)

    john.call("CommitReportDraft", id=ORIGINAL)

    for rpc, fields in (("GetReportDraft", {"id": ORIGINAL}), ("GetReport", {"id": JOHNS_DRAFT})):
        with pytest.raises(grpc.RpcError) as caught:
            john.call(rpc, **fields)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_commit_clears_every_users_view_settings_of_the_report_only(john, alice, bob):
    john.create()
    john.create(id="team:other")
    for client in (alice, bob):
        client.call("UpdateUserReportSettings", report_id=ORIGINAL, settings=struct({"zoom": 2}))
    alice.call("UpdateUserReportSettings", report_id="team:other", settings=struct({"zoom": 3}))
    john.call("EditReport", id=ORIGINAL)

    john.call("CommitReportDraft", id=ORIGINAL)

    for client in (alice, bob):
        assert as_dict(client.call("GetUserReportSettings", report_id=ORIGINAL))["settings"] == {}
    other = alice.call("GetUserReportSettings", report_id="team:other")
    assert as_dict(other)["settings"] == {"zoom": 3}


def test_commit_records_a_report_updated_activity_with_actor_time_and_changes(john, alice):
    john.create()
    alice.call("EditReport", id=ORIGINAL)
    _change_draft(
        alice,
        "user:alice:sales-dashboard-draft",
        "name",
        "datasets",
        name="Q1 Sales",
        datasets=[report_pb2.ReportDataset(dataset_id="orders")],
    )

    committed = alice.call("CommitReportDraft", id=ORIGINAL)

    (activity,) = john.call("ListReportActivities", report_id=ORIGINAL).activities
    assert as_dict(activity) == {
        "id": activity.id,
        "reportId": ORIGINAL,
        "type": "reportUpdated",
        "actorId": "user:alice",
        "createdAt": as_dict(committed)["updatedAt"],
        "details": {"name": "Q1 Sales", "datasets": [{"dataset_id": "orders", "alias": ""}]},
    }


def test_commit_without_a_draft_is_not_found_and_changes_nothing(john, server):
    john.create()
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as caught:
        john.call("CommitReportDraft", id=ORIGINAL)

    assert failure(caught.value).reason == "DRAFT_NOT_FOUND"
    assert snapshot(server.database) == before


def test_concurrent_commits_each_apply_whole_and_the_last_one_wins(john, server):
    original = john.create()
    drafts = {}
    for n in range(6):
        client = type(john).of(server, f"user:writer{n}")
        draft = client.call("EditReport", id=ORIGINAL)
        # Even writers keep the original's name and datasets: a commit that compared them with
        # a stale original (not the one the previous commit wrote) would skip them.
        if n % 2:
            draft.name = f"Writer {n}"
            draft.ClearField("datasets")
            draft.datasets.add(dataset_id=f"w{n}")
        draft.defn.Clear()
        draft.defn.update({"by": n})
        paths = ("name", "defn", "datasets")
        drafts[client.metadata[0][1]] = (
            client,
            _change_draft(
                client, draft.id, *paths, **{path: getattr(draft, path) for path in paths}
            ),
        )
    barrier = threading.Barrier(len(drafts))
    errors = []

    def commit(client):
        barrier.wait()
        try:
            client.call("CommitReportDraft", id=ORIGINAL)
        except grpc.RpcError as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=commit, args=(c,)) for c, _ in drafts.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    final = john.call("GetReport", id=ORIGINAL)
    activities = john.call("ListReportActivities", report_id=ORIGINAL).activities
    assert len(activities) == len(drafts)
    (last,) = [d for c, d in drafts.values() if d.owner_id == activities[0].actor_id]
    assert (final.name, final.defn, list(final.datasets)) == (
        last.name,
        last.defn,
        list(last.datasets),
    )
    assert final.snapshot == original.snapshot
