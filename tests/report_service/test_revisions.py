"""Revisions of originals (AIP-162): recorded with each change, listed, kept to a number, and
rolled back to."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2

from report_service.server import SERVICE
from report_service.v1 import report_pb2
from shared.budget import PAGE_MAX_BYTES
from shared.config import ConfigError, load_settings
from tests.report_service.support import Client, as_dict, struct
from tests.support import failure, serve, snapshot

ORIGINAL = "team:sales-dashboard"
Reason = report_pb2.ReportRevision.Reason
# Every committed field, each different from valid_report()'s.
CHANGED = {
    "name": "Changed",
    "defn": struct({"visuals": [{"kind": "pie"}]}),
    "template_id": "template-9",
    "datasource_id": "pg-prod",
    "query_id": "q-1",
    "settings": struct({"theme": "light"}),
    "enable_filter": False,
    "datasets": [report_pb2.ReportDataset(dataset_id="returns", alias="r")],
}
COMMITTED = tuple(CHANGED)


def _update(report_id: str, **fields) -> dict:
    return {
        "report": report_pb2.Report(id=report_id, **fields),
        "update_mask": field_mask_pb2.FieldMask(paths=list(fields)),
    }


def _revisions(client: Client, report_id: str = ORIGINAL) -> list[report_pb2.ReportRevision]:
    return list(client.call("ListReportRevisions", report_id=report_id).revisions)


_JSON_NAMES = ("name", "defn", "templateId", "datasourceId", "queryId", "settings")


def _committed(report: report_pb2.Report) -> dict:
    """The committed fields (as JSON; enable_filter false is left out, as unset)."""
    names = (*_JSON_NAMES, "enableFilter", "datasets")
    return {name: as_dict(report).get(name) for name in names}


def test_each_change_of_an_original_records_a_revision_of_what_it_left(alice, bob):
    created = alice.create()
    updated = bob.call("UpdateReport", **_update(ORIGINAL, name="Updated"))
    draft = alice.call("EditReport", id=ORIGINAL)
    alice.call("UpdateReport", **_update(draft.id, defn=struct({"v": "draft"})))  # a draft: none
    alice.call("UpdateReport", report=report_pb2.Report(id=ORIGINAL))  # changes nothing: none
    committed = alice.call("CommitReportDraft", id=ORIGINAL)

    revisions = _revisions(alice)

    assert [(r.reason, r.actor_id, r.snapshot) for r in revisions] == [
        (Reason.REASON_DRAFT_COMMITTED, "user:alice", committed),
        (Reason.REASON_UPDATED, "user:bob", updated),
        (Reason.REASON_CREATED, "user:alice", created),
    ]
    assert len({r.revision_id for r in revisions}) == 3
    assert all(r.report_id == ORIGINAL for r in revisions)
    assert [r.create_time for r in revisions] == [
        committed.updated_at,
        updated.updated_at,
        created.created_at,
    ]
    one = alice.call("GetReportRevision", report_id=ORIGINAL, revision_id=revisions[1].revision_id)
    assert one == revisions[1]


def test_revisions_are_listed_newest_first_a_page_at_a_time(alice):
    alice.create()
    for number in range(4):
        alice.call("UpdateReport", **_update(ORIGINAL, name=f"Name {number}"))

    pages, token = [], ""
    while True:
        page = alice.call("ListReportRevisions", report_id=ORIGINAL, page_size=2, page_token=token)
        pages.append([r.snapshot.name for r in page.revisions])
        token = page.next_page_token
        if not token:
            break

    assert pages == [["Name 3", "Name 2"], ["Name 1", "Name 0"], ["Sales Dashboard"]]


def test_a_page_token_of_another_list_is_refused(alice):
    alice.create()
    alice.create(id="team:other")
    token = alice.call("ListReports", page_size=1).next_page_token

    with pytest.raises(grpc.RpcError) as caught:
        alice.call("ListReportRevisions", report_id=ORIGINAL, page_token=token)

    error = failure(caught.value)
    assert (error.code, error.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])


def test_a_page_of_large_revisions_ends_at_the_page_budget(alice):
    large = struct({"blob": "x" * 700_000})
    alice.create(defn=large)
    for number in range(3):
        alice.call("UpdateReport", **_update(ORIGINAL, name=f"Name {number}"))

    pages, token = [], ""
    while True:
        page = alice.call("ListReportRevisions", report_id=ORIGINAL, page_size=10, page_token=token)
        pages.append(page)
        token = page.next_page_token
        if not token:
            break

    assert len(pages) > 1
    assert all(len(page.revisions) >= 1 and page.ByteSize() <= PAGE_MAX_BYTES for page in pages)
    names = [revision.snapshot.name for page in pages for revision in page.revisions]
    assert names == ["Name 2", "Name 1", "Name 0", "Sales Dashboard"]


def test_only_the_newest_revisions_kept_are_kept(tmp_path):
    url = f"sqlite:///{tmp_path / 'kept.db'}"
    with serve(SERVICE, url, options={"revisions_kept": 3}) as server:
        alice = Client.of(server, "user:alice")
        alice.create()
        for number in range(5):
            alice.call("UpdateReport", **_update(ORIGINAL, name=f"Name {number}"))

        kept = _revisions(alice)
        (stored,) = server.database.execute_sql("SELECT count(*) FROM report_revision").fetchall()

    assert [r.snapshot.name for r in kept] == ["Name 4", "Name 3", "Name 2"]
    assert stored == (3,)


def test_revisions_kept_comes_from_the_flag_or_the_environment_and_is_checked():
    def settings(flags, environ):
        return load_settings(
            "report-service",
            "REPORT",
            50052,
            flags,
            {"AUTH_JWT_SECRET": "s" * 32, **environ},
            options=SERVICE.options,
        )

    assert settings({}, {}).options == {}
    assert settings({}, {"REPORT_REVISIONS_KEPT": "7"}).options == {"revisions_kept": 7}
    assert settings({"revisions_kept": "9"}, {"REPORT_REVISIONS_KEPT": "7"}).options == {
        "revisions_kept": 9
    }
    with pytest.raises(ConfigError, match="REPORT_REVISIONS_KEPT must be between 1 and"):
        settings({}, {"REPORT_REVISIONS_KEPT": "0"})
    with pytest.raises(ConfigError, match="--revisions-kept must be a whole number"):
        settings({"revisions_kept": "many"}, {})


# ---------------------------------------------------------------------------
# RollbackReport
# ---------------------------------------------------------------------------


def test_rollback_restores_every_committed_field_and_the_datasets(alice, bob, server):
    created = alice.create()
    (first,) = _revisions(alice)
    changed = alice.call(
        "UpdateReport",
        **_update(
            ORIGINAL,
            snapshot=report_pb2.SnapshotSettings(schedule="@hourly"),
            **CHANGED,
        ),
    )
    assert all(_committed(changed)[k] != _committed(created)[k] for k in _committed(created))
    bobs_draft = bob.call("EditReport", id=ORIGINAL)
    alice.call("UpdateUserReportSettings", report_id=ORIGINAL, settings=struct({"zoom": 2}))
    bob.call("UpdateUserReportSettings", report_id=ORIGINAL, settings=struct({"zoom": 3}))

    rolled_back = bob.call("RollbackReport", id=ORIGINAL, revision_id=first.revision_id)

    assert _committed(rolled_back) == _committed(created)
    assert rolled_back.snapshot == changed.snapshot  # the original's own, as a commit leaves it
    assert alice.call("GetReport", id=ORIGINAL) == rolled_back
    assert rolled_back.etag not in (created.etag, changed.etag)
    assert rolled_back.defn_updated_at != changed.defn_updated_at
    newest = _revisions(alice)[0]
    assert (newest.reason, newest.actor_id, newest.snapshot) == (
        Reason.REASON_ROLLED_BACK,
        "user:bob",
        rolled_back,
    )
    activity = alice.call("ListReportActivities", report_id=ORIGINAL).activities[0]
    assert (activity.type, activity.actor_id) == ("reportRolledBack", "user:bob")
    details = as_dict(activity)["details"]
    assert details["revision_id"] == first.revision_id
    assert set(details["changes"]) == set(COMMITTED)
    assert details["changes"]["datasets"] == [
        {"dataset_id": "orders", "alias": "o"},
        {"dataset_id": "customers", "alias": "c"},
    ]
    for client in (alice, bob):  # view settings cleared, as on a commit
        settings = client.call("GetUserReportSettings", report_id=ORIGINAL)
        assert as_dict(settings).get("settings", {}) == {}
    assert bob.call("GetReportDraft", id=ORIGINAL).outdated
    assert not bobs_draft.outdated
    assert server.database.execute_sql(
        "SELECT dataset_id, alias, position FROM report_dataset WHERE report_id = "
        f"{server.database.param} ORDER BY position",
        (ORIGINAL,),
    ).fetchall() == [("orders", "o", 0), ("customers", "c", 1)]


def test_rollback_with_validate_only_answers_as_the_real_call_and_changes_nothing(alice, server):
    alice.create()
    (first,) = _revisions(alice)
    alice.call("UpdateReport", **_update(ORIGINAL, **CHANGED))
    alice.call("UpdateUserReportSettings", report_id=ORIGINAL, settings=struct({"zoom": 2}))
    before = snapshot(server.database)

    checked = alice.call(
        "RollbackReport", id=ORIGINAL, revision_id=first.revision_id, validate_only=True
    )

    assert snapshot(server.database) == before
    real = alice.call("RollbackReport", id=ORIGINAL, revision_id=first.revision_id)
    volatile = ("etag", "updated_at", "defn_updated_at")
    for message in (checked, real):
        for name in volatile:
            message.ClearField(name)
    assert checked == real


@pytest.mark.parametrize(
    ("who", "target", "revision", "code", "reason"),
    [
        ("alice", "original", "nope", grpc.StatusCode.NOT_FOUND, "REVISION_NOT_FOUND"),
        ("alice", "missing", "first", grpc.StatusCode.NOT_FOUND, "REPORT_NOT_FOUND"),
        ("alice", "draft", "first", grpc.StatusCode.FAILED_PRECONDITION, "REPORT_IS_DRAFT"),
        ("bob", "draft", "first", grpc.StatusCode.NOT_FOUND, "REPORT_NOT_FOUND"),
        ("alice", "original", "", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
        ("alice", "original", "x" * 65, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    ],
)
def test_rollback_and_get_revision_refuse_what_they_cannot_find_and_change_nothing(
    alice, bob, server, who, target, revision, code, reason
):
    alice.create()
    (first,) = _revisions(alice)
    draft = alice.call("EditReport", id=ORIGINAL)
    report_id = {"original": ORIGINAL, "missing": "team:missing", "draft": draft.id}[target]
    revision_id = first.revision_id if revision == "first" else revision
    client = {"alice": alice, "bob": bob}[who]
    before = snapshot(server.database)

    for rpc, fields in (
        ("RollbackReport", {"id": report_id}),
        ("GetReportRevision", {"report_id": report_id}),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            client.call(rpc, revision_id=revision_id, **fields)
        error = failure(caught.value)
        assert (error.code, error.reason) == (code, reason), rpc

    assert snapshot(server.database) == before


def test_listing_the_revisions_of_a_draft_is_refused_as_drafts_have_none(alice, bob):
    alice.create()
    draft = alice.call("EditReport", id=ORIGINAL)

    refusals = ((alice, grpc.StatusCode.FAILED_PRECONDITION), (bob, grpc.StatusCode.NOT_FOUND))
    for client, code in refusals:
        with pytest.raises(grpc.RpcError) as caught:
            client.call("ListReportRevisions", report_id=draft.id)
        assert caught.value.code() == code
