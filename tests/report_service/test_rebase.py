"""DiffReportDraft and RebaseReportDraft: a draft against its original now and against its base."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2, json_format

from report_service.server import SERVICE
from report_service.v1 import report_pb2
from tests.report_service.support import Client, as_dict, struct
from tests.support import failure, serve, snapshot

ORIGINAL = "team:sales-dashboard"
NEW_DATASETS = [report_pb2.ReportDataset(dataset_id="returns", alias="r")]


def _update(report_id: str, **fields) -> dict:
    return {
        "report": report_pb2.Report(id=report_id, **fields),
        "update_mask": field_mask_pb2.FieldMask(paths=list(fields)),
    }


def _value(change, which: str):
    return json_format.MessageToDict(getattr(change, f"{which}_value"))


def _drafted(alice: Client, bob: Client) -> str:
    """alice's original; bob's draft of it with a defn and a settings of his own; then alice
    renames the original, replaces its datasets and changes its settings. The draft's id."""
    alice.create()
    draft = bob.call("EditReport", id=ORIGINAL).id
    bob.call(
        "UpdateReport",
        **_update(draft, defn=struct({"v": "bob"}), settings=struct({"theme": "bob"})),
    )
    alice.call(
        "UpdateReport",
        **_update(
            ORIGINAL,
            name="Renamed",
            datasets=NEW_DATASETS,
            settings=struct({"theme": "alice"}),
        ),
    )
    return draft


def test_diff_lists_each_field_draft_and_original_differ_on_with_the_base(alice, bob):
    _drafted(alice, bob)
    first = alice.call("ListReportRevisions", report_id=ORIGINAL).revisions[-1]

    diff = bob.call("DiffReportDraft", id=ORIGINAL)

    assert diff.outdated and diff.draft.outdated
    assert diff.draft == bob.call("GetReportDraft", id=ORIGINAL)
    assert diff.original == alice.call("GetReport", id=ORIGINAL)
    assert diff.base_revision_id == first.revision_id
    changes = {
        c.field: (_value(c, "base"), _value(c, "original"), _value(c, "draft"))
        for c in diff.changes
    }
    assert [c.field for c in diff.changes] == ["name", "defn", "settings", "datasets"]
    assert changes["name"] == ("Sales Dashboard", "Renamed", "Sales Dashboard")
    assert changes["defn"] == ({"visuals": [{"kind": "bar"}]},) * 2 + ({"v": "bob"},)
    assert changes["settings"] == ({"theme": "dark"}, {"theme": "alice"}, {"theme": "bob"})
    assert changes["datasets"][1] == [{"dataset_id": "returns", "alias": "r"}]
    assert (
        changes["datasets"][0]
        == changes["datasets"][2]
        == [
            {"dataset_id": "orders", "alias": "o"},
            {"dataset_id": "customers", "alias": "c"},
        ]
    )
    assert not any(change.values_omitted for change in diff.changes)


def test_rebase_takes_the_originals_changes_keeps_the_drafts_and_lists_conflicts(alice, bob):
    draft_id = _drafted(alice, bob)
    original = alice.call("GetReport", id=ORIGINAL)

    rebased = bob.call("RebaseReportDraft", id=ORIGINAL)

    draft = rebased.draft
    assert list(rebased.conflicts) == ["settings"]  # changed by both, differently
    assert draft.name == "Renamed"  # the original's change
    assert list(draft.datasets) == NEW_DATASETS  # the datasets, one field
    assert as_dict(draft)["defn"] == {"v": "bob"}  # the draft's own change
    assert as_dict(draft)["settings"] == {"theme": "bob"}  # a conflict keeps the draft's
    assert (draft.id, draft.original_etag, draft.outdated) == (draft_id, original.etag, False)
    assert bob.call("GetReportDraft", id=ORIGINAL) == draft
    assert not bob.call("DiffReportDraft", id=ORIGINAL).outdated


def test_rebase_without_conflicts_merges_both_sides(alice, bob):
    alice.create()
    draft = bob.call("EditReport", id=ORIGINAL).id
    bob.call("UpdateReport", **_update(draft, defn=struct({"v": "bob"}), query_id="q-bob"))
    alice.call("UpdateReport", **_update(ORIGINAL, enable_filter=False, query_id="q-bob"))

    rebased = bob.call("RebaseReportDraft", id=ORIGINAL)

    assert list(rebased.conflicts) == []  # query_id: both made the same change
    assert (as_dict(rebased.draft)["defn"], rebased.draft.query_id) == ({"v": "bob"}, "q-bob")
    assert rebased.draft.enable_filter is False
    committed = bob.call("CommitReportDraft", id=ORIGINAL, etag=rebased.draft.original_etag)
    assert as_dict(committed)["defn"] == {"v": "bob"} and committed.enable_filter is False


def test_a_draft_that_is_not_outdated_is_returned_unchanged(bob, alice, server):
    alice.create()
    bob.call("EditReport", id=ORIGINAL)
    draft = bob.call("GetReportDraft", id=ORIGINAL)
    before = snapshot(server.database)

    rebased = bob.call("RebaseReportDraft", id=ORIGINAL)

    assert (rebased.draft, list(rebased.conflicts)) == (draft, [])
    assert snapshot(server.database) == before


def test_without_its_base_every_differing_field_is_a_conflict_kept_from_the_draft(tmp_path):
    with serve(SERVICE, f"sqlite:///{tmp_path / 'one.db'}", options={"revisions_kept": 1}) as s:
        alice, bob = Client.of(s, "user:alice"), Client.of(s, "user:bob")
        draft_id = _drafted(alice, bob)  # the update pruned the revision bob's draft is from

        diff = bob.call("DiffReportDraft", id=ORIGINAL)
        rebased = bob.call("RebaseReportDraft", id=ORIGINAL)

    assert diff.base_revision_id == "" and not any(c.HasField("base_value") for c in diff.changes)
    assert list(rebased.conflicts) == ["name", "defn", "settings", "datasets"]
    assert rebased.draft.id == draft_id and rebased.draft.name == "Sales Dashboard"
    assert not rebased.draft.outdated


def test_rebase_with_validate_only_answers_as_the_real_call_and_changes_nothing(alice, bob, server):
    _drafted(alice, bob)
    before = snapshot(server.database)

    checked = bob.call("RebaseReportDraft", id=ORIGINAL, validate_only=True)

    assert snapshot(server.database) == before
    real = bob.call("RebaseReportDraft", id=ORIGINAL)
    for response in (checked, real):
        for name in ("etag", "updated_at", "defn_updated_at", "expire_time"):
            response.draft.ClearField(name)
    assert checked == real


def test_rebase_with_a_stale_etag_or_of_no_draft_changes_nothing(alice, bob, john, server):
    _drafted(alice, bob)
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as stale:
        bob.call("RebaseReportDraft", id=ORIGINAL, etag="W/stale")
    with pytest.raises(grpc.RpcError) as none:
        john.call("RebaseReportDraft", id=ORIGINAL)
    with pytest.raises(grpc.RpcError) as no_diff:
        john.call("DiffReportDraft", id=ORIGINAL)

    assert failure(stale.value).reason == "ETAG_MISMATCH"
    assert failure(none.value).reason == failure(no_diff.value).reason == "DRAFT_NOT_FOUND"
    assert snapshot(server.database) == before


def test_rebase_runs_the_drivers_before_create_draft_and_a_refusal_changes_nothing(
    serve_with_driver, database_url
):
    source = """
        class Driver:
            def before_create_draft(self, original, draft):
                if original.name == "Refused":
                    raise RuntimeError("no rebase onto a refused original")
                draft.settings["stamped"] = original.name
    """
    with serve_with_driver(source) as server:
        alice, bob = Client.of(server, "user:alice"), Client.of(server, "user:bob")
        alice.create()
        bob.call("EditReport", id=ORIGINAL)
        alice.call("UpdateReport", **_update(ORIGINAL, name="Stamped"))
        assert as_dict(bob.call("RebaseReportDraft", id=ORIGINAL).draft)["settings"] == {
            "theme": "dark",
            "stamped": "Stamped",
        }
        alice.call("UpdateReport", **_update(ORIGINAL, name="Refused"))
        before = snapshot(server.database)

        for validate_only in (True, False):
            with pytest.raises(grpc.RpcError) as caught:
                bob.call("RebaseReportDraft", id=ORIGINAL, validate_only=validate_only)
            error = failure(caught.value)
            assert (error.code, error.reason) == (
                grpc.StatusCode.FAILED_PRECONDITION,
                "DRIVER_FAILED",
            )
            assert snapshot(server.database) == before


def test_a_diff_of_large_fields_omits_values_past_its_budget(alice, bob):
    large = {"blob": "x" * 400_000}
    alice.create(defn=struct(large))
    draft = bob.call("EditReport", id=ORIGINAL).id
    bob.call("UpdateReport", **_update(draft, defn=struct({"blob": "y" * 400_000}), name="Bob's"))
    alice.call("UpdateReport", **_update(ORIGINAL, defn=struct({"blob": "z" * 400_000})))

    diff = bob.call("DiffReportDraft", id=ORIGINAL)

    by_field = {change.field: change for change in diff.changes}
    assert by_field["defn"].values_omitted and not by_field["defn"].HasField("draft_value")
    assert not by_field["name"].values_omitted and _value(by_field["name"], "draft") == "Bob's"
    assert diff.ByteSize() < 4 * 1024 * 1024
