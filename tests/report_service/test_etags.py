"""Etags (AIP-154): new on every change, and a stale one refuses the write and changes nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import field_mask_pb2

from report_service.v1 import report_pb2
from tests.report_service.support import struct
from tests.support import failure, snapshot

ORIGINAL = "team:sales-dashboard"
STALE = "W/0000000000000000"


def _update(report_id: str, etag: str = "", **fields) -> dict:
    return {
        "report": report_pb2.Report(id=report_id, etag=etag, **fields),
        "update_mask": field_mask_pb2.FieldMask(paths=list(fields)),
    }


@dataclass
class Setup:
    """alice's original and her draft of it, each as last read, and the original's revision."""

    original: report_pb2.Report
    draft: report_pb2.Report
    revision_id: str


@pytest.fixture
def setup(alice) -> Setup:
    original = alice.create()
    draft = alice.call("EditReport", id=ORIGINAL)
    alice.call("UpdateReport", **_update(draft.id, defn=struct({"v": "draft"})))
    (revision,) = alice.call("ListReportRevisions", report_id=ORIGINAL).revisions
    return Setup(original, alice.call("GetReportDraft", id=ORIGINAL), revision.revision_id)


# Each write that takes an etag: (rpc, request fields given the etag to send, which etag is the
# right one: the original's or the draft's).
WRITES: dict[str, tuple[str, Callable[[Setup, str], dict], str]] = {
    "UpdateReport of the original": (
        "UpdateReport",
        lambda s, etag: _update(s.original.id, etag, name="Renamed"),
        "original",
    ),
    "UpdateReport of the draft": (
        "UpdateReport",
        lambda s, etag: _update(s.draft.id, etag, name="Renamed"),
        "draft",
    ),
    "DeleteReport of the original": (
        "DeleteReport",
        lambda s, etag: {"id": s.original.id, "etag": etag},
        "original",
    ),
    "DeleteReport of the draft": (
        "DeleteReport",
        lambda s, etag: {"id": s.draft.id, "etag": etag},
        "draft",
    ),
    "PutReportDraft": (
        "PutReportDraft",
        lambda s, etag: {
            "id": ORIGINAL,
            "draft": report_pb2.ReportDraftInput(defn=struct({"v": "put"})),
            "etag": etag,
        },
        "draft",
    ),
    "DiscardReportDraft": (
        "DiscardReportDraft",
        lambda s, etag: {"id": ORIGINAL, "etag": etag},
        "draft",
    ),
    "CommitReportDraft": (
        "CommitReportDraft",
        lambda s, etag: {"id": ORIGINAL, "etag": etag},
        "original",
    ),
    "RebaseReportDraft": (
        "RebaseReportDraft",
        lambda s, etag: {"id": ORIGINAL, "etag": etag},
        "draft",
    ),
    "RollbackReport": (
        "RollbackReport",
        lambda s, etag: {"id": ORIGINAL, "revision_id": s.revision_id, "etag": etag},
        "original",
    ),
}


@pytest.mark.parametrize("write", sorted(WRITES))
@pytest.mark.parametrize("stale", ["the other's etag", "a stale etag"])
def test_a_write_with_an_etag_that_is_not_current_is_aborted_and_changes_nothing(
    alice, server, setup, write, stale
):
    rpc, build, right = WRITES[write]
    wrong = {"original": setup.draft.etag, "draft": setup.original.etag}[right]
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as caught:
        alice.call(rpc, **build(setup, wrong if stale == "the other's etag" else STALE))

    error = failure(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    assert error.domain == "report-service"
    assert error.metadata == {"field": "report.etag" if rpc == "UpdateReport" else "etag"}
    assert snapshot(server.database) == before


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_write_with_the_current_etag_goes_through(alice, setup, write):
    rpc, build, right = WRITES[write]
    etag = {"original": setup.original.etag, "draft": setup.draft.etag}[right]

    alice.call(rpc, **build(setup, etag))  # no error


def test_every_change_gives_a_new_etag_and_a_read_keeps_it(alice):
    seen = [alice.create().etag]
    seen.append(alice.call("UpdateReport", **_update(ORIGINAL, name="Two")).etag)
    assert alice.call("GetReport", id=ORIGINAL).etag == seen[-1]
    assert alice.call("ListReports").reports[0].etag == seen[-1]
    draft = alice.call("EditReport", id=ORIGINAL)
    seen.append(draft.etag)
    assert alice.call("EditReport", id=ORIGINAL).etag == draft.etag  # returned as it is
    seen.append(alice.call("UpdateReport", **_update(draft.id, name="Three")).etag)
    seen.append(alice.call("PutReportDraft", id=ORIGINAL).report.etag)
    seen.append(alice.call("CommitReportDraft", id=ORIGINAL).etag)
    (first, *_) = reversed(alice.call("ListReportRevisions", report_id=ORIGINAL).revisions)
    seen.append(alice.call("RollbackReport", id=ORIGINAL, revision_id=first.revision_id).etag)

    assert len(set(seen)) == len(seen), seen
    assert all(re.fullmatch("W/[0-9a-f]{16}", etag) for etag in seen)


def test_an_update_that_changes_nothing_keeps_the_etag(alice):
    created = alice.create()

    unchanged = alice.call("UpdateReport", report=report_pb2.Report(id=ORIGINAL))

    assert unchanged.etag == created.etag


def test_a_draft_carries_its_originals_etag_and_is_outdated_once_the_original_changes(alice, bob):
    created = alice.create()
    draft = bob.call("EditReport", id=ORIGINAL)
    assert (draft.original_etag, draft.outdated) == (created.etag, False)
    assert not created.outdated and created.original_etag == ""

    alice.call("UpdateReport", **_update(ORIGINAL, name="Moved on"))

    for read in (
        bob.call("GetReportDraft", id=ORIGINAL),
        bob.call("GetReport", id=draft.id),
        bob.call("EditReport", id=ORIGINAL),
        bob.call("UpdateReport", **_update(draft.id, defn=struct({"v": 1}))),
    ):
        assert (read.original_etag, read.outdated) == (created.etag, True)
    put = bob.call("PutReportDraft", id=ORIGINAL).report  # made again from the original
    assert (put.original_etag, put.outdated) == (alice.call("GetReport", id=ORIGINAL).etag, False)


def test_committing_with_the_drafts_original_etag_fails_once_someone_else_committed(
    alice, bob, server
):
    alice.create()
    mine = alice.call("EditReport", id=ORIGINAL)
    bob.call("EditReport", id=ORIGINAL)
    bob.call("CommitReportDraft", id=ORIGINAL)
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as caught:
        alice.call("CommitReportDraft", id=ORIGINAL, etag=mine.original_etag)

    assert failure(caught.value).reason == "ETAG_MISMATCH"
    assert snapshot(server.database) == before
    # Rebased, the draft's original_etag is current again and the commit goes through.
    rebased = alice.call("RebaseReportDraft", id=ORIGINAL).draft
    alice.call("CommitReportDraft", id=ORIGINAL, etag=rebased.original_etag)


def test_put_report_draft_with_an_etag_and_no_draft_to_replace_is_aborted(alice, server):
    alice.create()
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as caught:
        alice.call("PutReportDraft", id=ORIGINAL, etag=STALE)

    assert failure(caught.value).reason == "ETAG_MISMATCH"
    assert snapshot(server.database) == before


def test_an_etag_of_a_deleted_report_does_not_match_the_report_created_again_with_its_id(alice):
    old = alice.create()
    alice.call("DeleteReport", id=ORIGINAL)
    alice.create()

    with pytest.raises(grpc.RpcError) as caught:
        alice.call("UpdateReport", **_update(ORIGINAL, old.etag, name="Renamed"))

    assert failure(caught.value).reason == "ETAG_MISMATCH"


def test_naming_etag_in_the_update_mask_is_refused_as_output_only(alice):
    alice.create()

    with pytest.raises(grpc.RpcError) as caught:
        alice.call(
            "UpdateReport",
            report=report_pb2.Report(id=ORIGINAL, etag=STALE),
            update_mask=field_mask_pb2.FieldMask(paths=["etag"]),
        )

    error = failure(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.fields == ["update_mask"] and "output only" in error.violations[0][1]
