"""The draft workflow: EditReport, GetReportDraft, PutReportDraft, DiscardReportDraft, owners."""

from __future__ import annotations

import threading

import grpc
import pytest
from google.protobuf import field_mask_pb2

from report_service.drafts import draft_id
from report_service.v1 import report_pb2
from tests.report_service.support import as_dict, struct
from tests.support import failure, snapshot, without_events

ORIGINAL = "team:sales-dashboard"
JOHNS_DRAFT = "user:john.doe:sales-dashboard-draft"
# What a draft copies from its original, and what makes it a draft instead.
COPIED = ("type", "name", "defn", "template_id", "datasource_id", "query_id", "settings")
COPIED += ("enable_filter", "datasets", "snapshot")


def _copied(report: report_pb2.Report) -> dict:
    return {name: getattr(report, name) for name in COPIED} | {
        "has_query_id": report.HasField("query_id")
    }


@pytest.mark.parametrize(
    ("principal", "original_id", "expected"),
    [
        ("user:john.doe", "team:sales-dashboard", "user:john.doe:sales-dashboard-draft"),
        ("svc", "team:sales", "svc:sales-draft"),
        ("user:john.doe", "team:q1:sales", "user:john.doe:~team%3Aq1%3Asales-draft"),
        ("user:john.doe", "org:sales", "user:john.doe:sales-draft"),
        ("user:john.doe", "sales", "user:john.doe:sales-draft"),
        ("user:john.doe", "~sales", "user:john.doe:~~sales-draft"),
        ("user:john.doe", "team:~x", "user:john.doe:~team%3A~x-draft"),
        ("user:john.doe", "team:50%", "user:john.doe:50%-draft"),
        ("user:john.doe", "org:50%", "user:john.doe:50%-draft"),
        ("user:john.doe", "org:a:50%", "user:john.doe:~org%3Aa%3A50%25-draft"),
    ],
)
def test_draft_id_is_the_seeds_form_unless_the_slug_holds_a_colon(principal, original_id, expected):
    assert draft_id(principal, original_id) == expected


def test_edit_report_creates_a_draft_of_the_caller_copying_the_whole_configuration(alice, john):
    original = alice.create()

    draft = john.call("EditReport", id=ORIGINAL)

    assert (draft.id, draft.editing_id, draft.owner_id) == (JOHNS_DRAFT, ORIGINAL, "user:john.doe")
    assert _copied(draft) == _copied(original)
    assert as_dict(draft)["links"] == {
        "self": {"href": f"/api/reports/{JOHNS_DRAFT}"},
        "original": {"href": f"/api/reports/{ORIGINAL}"},
        "commitDraft": {"href": f"/api/reports/{ORIGINAL}/draft/_commit"},
    }
    assert draft.created_at.ToDatetime() > original.created_at.ToDatetime()
    assert john.call("GetReportDraft", id=ORIGINAL) == draft
    assert john.call("GetReport", id=JOHNS_DRAFT) == draft


def test_edit_report_returns_an_existing_draft_unchanged(john, server):
    john.create()
    draft = john.call("EditReport", id=ORIGINAL)
    changed = john.call(
        "UpdateReport", report=report_pb2.Report(id=draft.id, defn=struct({"visuals": []}))
    )
    before = snapshot(server.database)

    again = john.call("EditReport", id=ORIGINAL)

    assert again == changed
    assert snapshot(server.database) == before


def test_edit_report_of_a_report_without_a_colon_takes_its_whole_id_as_the_slug(john):
    john.create(id="sales")

    assert john.call("EditReport", id="sales").id == "user:john.doe:sales-draft"


def test_get_report_draft_is_not_found_when_the_caller_has_no_draft(john):
    john.create()

    with pytest.raises(grpc.RpcError) as caught:
        john.call("GetReportDraft", id=ORIGINAL)

    error = failure(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "DRAFT_NOT_FOUND")


def test_put_report_draft_creates_a_draft_from_the_original_and_the_given_fields(john):
    original = john.create(query_id="q-0")

    response = john.call(
        "PutReportDraft",
        id=ORIGINAL,
        draft=report_pb2.ReportDraftInput(defn=struct({"visuals": []}), template_id="template-9"),
    )

    assert response.created is True
    draft = response.report
    assert (draft.id, draft.editing_id, draft.owner_id) == (JOHNS_DRAFT, ORIGINAL, "user:john.doe")
    assert as_dict(draft)["defn"] == {"visuals": []}
    assert draft.template_id == "template-9"
    for name in ("name", "datasource_id", "query_id", "settings", "enable_filter"):
        assert getattr(draft, name) == getattr(original, name), name
    assert (draft.datasets, draft.snapshot) == (original.datasets, original.snapshot)
    assert john.call("GetReportDraft", id=ORIGINAL) == draft


def test_put_report_draft_replaces_an_existing_draft_with_the_original_and_the_given_fields(john):
    original = john.create()
    draft = john.call("EditReport", id=ORIGINAL)
    john.call(
        "UpdateReport",
        report=report_pb2.Report(
            id=draft.id, name="Renamed in draft", defn=struct({"v": 1}), query_id="q-1"
        ),
        update_mask=field_mask_pb2.FieldMask(paths=["name", "defn", "query_id", "datasets"]),
    )

    response = john.call(
        "PutReportDraft", id=ORIGINAL, draft=report_pb2.ReportDraftInput(settings=struct({"x": 1}))
    )

    assert response.created is False
    replaced = response.report
    assert replaced.name == "Renamed in draft"  # PutReportDraft never renames
    assert as_dict(replaced)["settings"] == {"x": 1}
    assert (replaced.defn, replaced.datasets) == (original.defn, original.datasets)
    assert not replaced.HasField("query_id")
    assert replaced.created_at == draft.created_at


def test_discard_report_draft_deletes_the_draft_and_leaves_the_original(john, server):
    original = john.create()
    before = snapshot(server.database)
    john.call("EditReport", id=ORIGINAL)

    john.call("DiscardReportDraft", id=ORIGINAL)

    # Only the events of the two calls were added (DRAFT_CREATED, DRAFT_DISCARDED).
    assert without_events(snapshot(server.database)) == without_events(before)
    assert john.call("GetReport", id=ORIGINAL) == original


def test_the_seed_workflow_edits_changes_and_commits_a_draft(john):
    john.create(defn=struct({"visuals": [{"kind": "bar"}]}))

    draft = john.call("EditReport", id=ORIGINAL)
    assert as_dict(draft)["id"] == JOHNS_DRAFT
    assert (as_dict(draft)["editingId"], as_dict(draft)["ownerId"]) == (ORIGINAL, "user:john.doe")
    john.call(
        "UpdateReport",
        report=report_pb2.Report(id=JOHNS_DRAFT, defn=struct({"visuals": [{"kind": "line"}]})),
    )
    committed = john.call("CommitReportDraft", id=ORIGINAL)

    shown = as_dict(committed)
    assert shown["id"] == ORIGINAL
    assert shown["defn"] == {"visuals": [{"kind": "line"}]}
    assert shown["defnUpdatedAt"] == shown["updatedAt"]
    assert john.call("GetReport", id=ORIGINAL) == committed
    with pytest.raises(grpc.RpcError) as caught:
        john.call("GetReportDraft", id=ORIGINAL)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_seed_workflow_discards_a_draft_and_loses_its_changes(john):
    original = john.create()
    john.call("EditReport", id=ORIGINAL)
    john.call("UpdateReport", report=report_pb2.Report(id=JOHNS_DRAFT, name="Lost"))

    john.call("DiscardReportDraft", id=ORIGINAL)

    assert john.call("GetReport", id=ORIGINAL) == original


# ---------------------------------------------------------------------------
# Several principals
# ---------------------------------------------------------------------------


def test_each_principal_has_an_independent_draft_and_the_last_commit_wins(john, alice, bob):
    john.create()
    alices = alice.call("EditReport", id=ORIGINAL)
    bobs = bob.call("EditReport", id=ORIGINAL)
    assert (alices.id, bobs.id) == (
        "user:alice:sales-dashboard-draft",
        "user:bob:sales-dashboard-draft",
    )
    alice.call(
        "UpdateReport",
        report=report_pb2.Report(id=alices.id, name="Alice", defn=struct({"by": "a"})),
    )
    bob.call(
        "UpdateReport",
        report=report_pb2.Report(
            id=bobs.id,
            defn=struct({"by": "b"}),
            datasets=[report_pb2.ReportDataset(dataset_id="b")],
        ),
    )

    alice.call("CommitReportDraft", id=ORIGINAL)
    assert bob.call("GetReportDraft", id=ORIGINAL).name == "Sales Dashboard"  # untouched
    last = bob.call("CommitReportDraft", id=ORIGINAL)

    assert as_dict(last)["defn"] == {"by": "b"}
    assert [d.dataset_id for d in last.datasets] == ["b"]
    # Bob's draft still has the name Alice's commit replaced: it differs, so it is committed too.
    assert last.name == "Sales Dashboard"
    activities = john.call("ListReportActivities", report_id=ORIGINAL).activities
    assert [a.actor_id for a in activities] == ["user:bob", "user:alice"]


@pytest.mark.parametrize(
    ("rpc", "fields"),
    [
        ("GetReport", {"id": JOHNS_DRAFT}),
        ("DeleteReport", {"id": JOHNS_DRAFT}),
        ("UpdateReport", {"report": report_pb2.Report(id=JOHNS_DRAFT, name="Mine now")}),
        ("ListReportActivities", {"report_id": JOHNS_DRAFT}),
        ("GetUserReportSettings", {"report_id": JOHNS_DRAFT}),
        ("UpdateUserReportSettings", {"report_id": JOHNS_DRAFT}),
        ("EditReport", {"id": JOHNS_DRAFT}),
        ("GetReportDraft", {"id": JOHNS_DRAFT}),
    ],
)
def test_another_principals_draft_is_not_found(john, alice, server, rpc, fields):
    john.create()
    john.call("EditReport", id=ORIGINAL)
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as caught:
        alice.call(rpc, **fields)

    error = failure(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "REPORT_NOT_FOUND")
    assert JOHNS_DRAFT in error.message
    assert snapshot(server.database) == before


@pytest.mark.parametrize("rpc", ["GetReportDraft", "DiscardReportDraft", "CommitReportDraft"])
def test_a_principal_cannot_reach_another_principals_draft_through_the_original(
    john, alice, server, rpc
):
    john.create()
    john.call("EditReport", id=ORIGINAL)
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as caught:
        alice.call(rpc, id=ORIGINAL)

    error = failure(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "DRAFT_NOT_FOUND")
    assert snapshot(server.database) == before


def test_list_reports_never_shows_drafts(john, alice):
    john.create()
    john.call("EditReport", id=ORIGINAL)
    alice.call("EditReport", id=ORIGINAL)

    assert [report.id for report in alice.call("ListReports").reports] == [ORIGINAL]


# ---------------------------------------------------------------------------
# Draft ids that cannot be used
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rpc",
    ["EditReport", "GetReportDraft", "PutReportDraft", "DiscardReportDraft", "CommitReportDraft"],
)
def test_draft_rpcs_given_the_callers_draft_id_fail_with_failed_precondition(john, server, rpc):
    john.create()
    john.call("EditReport", id=ORIGINAL)
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as caught:
        john.call(rpc, id=JOHNS_DRAFT)

    error = failure(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REPORT_IS_DRAFT")
    assert error.metadata == {"editing_id": ORIGINAL}
    assert snapshot(server.database) == before


def test_one_principals_drafts_of_one_slug_in_two_namespaces_share_an_id_one_at_a_time(
    john, server
):
    for original in ("team:sales", "other:sales", "team:q1:sales"):
        john.create(id=original)
    first = john.call("EditReport", id="team:sales")
    # a slug with a `:` is spelt out whole, so it has an id of its own
    assert john.call("EditReport", id="team:q1:sales").id != first.id
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as caught:
        john.call("PutReportDraft", id="other:sales")

    error = failure(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DRAFT_ID_TAKEN")
    assert error.metadata == {"draft_id": first.id, "editing_id": "team:sales"}
    assert snapshot(server.database) == before
    john.call("DiscardReportDraft", id="team:sales")
    assert john.call("EditReport", id="other:sales").id == first.id


def test_edit_report_refuses_a_draft_id_longer_than_512_characters(john, server):
    long_id = "team:" + "x" * 500
    john.create(id=long_id)
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as caught:
        john.call("EditReport", id=long_id)

    error = failure(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DRAFT_ID_TOO_LONG")
    assert snapshot(server.database) == before


def test_concurrent_edit_report_calls_of_one_principal_all_return_the_one_draft(john):
    john.create()
    barrier = threading.Barrier(6)
    results, errors = [], []

    def edit():
        barrier.wait()
        try:
            results.append(john.call("EditReport", id=ORIGINAL))
        except grpc.RpcError as error:  # pragma: no cover - reported below
            errors.append(failure(error))

    threads = [threading.Thread(target=edit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert {draft.id for draft in results} == {JOHNS_DRAFT}
    assert len({draft.created_at.ToNanoseconds() for draft in results}) == 1
