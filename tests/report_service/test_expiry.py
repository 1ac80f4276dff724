"""Expiry of drafts (REPORT_DRAFT_TTL) and the purging of expired drafts and old request ids.

The clock moves through a setting: the same store is served again with `clock_offset` (the
test-only REPORT_CLOCK_OFFSET), so the service believes days have passed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from report_service.server import SERVICE
from report_service.v1 import report_pb2
from tests.report_service.support import Client, struct
from tests.support import DAY, RunningService, days_ahead, failure, snapshot, watch_log

ORIGINAL = "team:sales-dashboard"
DRAFT = "user:alice:sales-dashboard-draft"

At = Callable[..., AbstractContextManager[RunningService]]


@pytest.fixture
def at(database_url) -> At:
    """The service on this test's store, its clock `days` ahead of now."""
    return days_ahead(SERVICE, database_url)


def _alice(server: RunningService) -> Client:
    return Client.of(server, "user:alice")


def _reason(call: Callable[[], object]) -> tuple:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    found = failure(caught.value)
    return found.code, found.reason


def test_a_draft_expires_its_ttl_after_its_last_change(at):
    with at() as server:
        alice = _alice(server)
        original = alice.create()
        draft = alice.call("EditReport", id=ORIGINAL)
    assert not original.HasField("expire_time")
    assert draft.expire_time.ToSeconds() == draft.updated_at.ToSeconds() + 30 * DAY

    with at(days=20) as server:  # a change renews it
        alice = _alice(server)
        changed = alice.call(
            "UpdateReport",
            report=report_pb2.Report(id=DRAFT, defn=struct({"v": 2})),
            update_mask=field_mask_pb2.FieldMask(paths=["defn"]),
        )
        assert changed.expire_time.ToSeconds() == changed.updated_at.ToSeconds() + 30 * DAY
        assert changed.expire_time.ToSeconds() >= draft.expire_time.ToSeconds() + 20 * DAY
    with at(days=31) as server:  # 31 days after it was made, 11 after its last change
        assert _alice(server).call("GetReportDraft", id=ORIGINAL).defn == struct({"v": 2})


def test_an_expired_draft_is_gone_for_every_rpc_and_the_original_is_unaffected(at):
    with at() as server:
        alice = _alice(server)
        alice.create()
        alice.call("EditReport", id=ORIGINAL)
        alice.call("UpdateUserReportSettings", report_id=DRAFT, settings=struct({"z": 1}))
        original = alice.call("GetReport", id=ORIGINAL)

    with at(days=30.01) as server:
        alice = _alice(server)
        before = snapshot(server.database)
        expired = (grpc.StatusCode.NOT_FOUND, "DRAFT_EXPIRED")
        calls = {
            "GetReport": lambda: alice.call("GetReport", id=DRAFT),
            "GetReportDraft": lambda: alice.call("GetReportDraft", id=ORIGINAL),
            "UpdateReport": lambda: alice.call(
                "UpdateReport", report=report_pb2.Report(id=DRAFT, name="late")
            ),
            "DeleteReport": lambda: alice.call("DeleteReport", id=DRAFT),
            "DiscardReportDraft": lambda: alice.call("DiscardReportDraft", id=ORIGINAL),
            "CommitReportDraft": lambda: alice.call("CommitReportDraft", id=ORIGINAL),
            "ListReportActivities": lambda: alice.call("ListReportActivities", report_id=DRAFT),
            "GetUserReportSettings": lambda: alice.call("GetUserReportSettings", report_id=DRAFT),
            "UpdateUserReportSettings": lambda: alice.call(
                "UpdateUserReportSettings", report_id=DRAFT, settings=struct({"z": 2})
            ),
        }
        answers = {name: _reason(call) for name, call in calls.items()}
        assert answers == dict.fromkeys(calls, expired)
        assert snapshot(server.database) == before  # nothing waited for the purge
        assert alice.call("GetReport", id=ORIGINAL) == original


@pytest.mark.parametrize("rpc", ["EditReport", "PutReportDraft"])
def test_edit_and_put_make_a_new_draft_in_place_of_an_expired_one(at, rpc):
    with at() as server:
        alice = _alice(server)
        alice.create()
        old = report_pb2.ReportDraftInput(defn=struct({"v": "old"}))
        alice.call("PutReportDraft", id=ORIGINAL, draft=old)
    with at(days=31) as server:
        alice = _alice(server)
        made = alice.call(rpc, id=ORIGINAL)
        draft = made if rpc == "EditReport" else made.report
        assert rpc == "EditReport" or made.created
        assert dict(draft.defn) != {"v": "old"}  # a fresh copy of the original
        assert alice.call("GetReportDraft", id=ORIGINAL) == draft


def _recording_driver(path: Path, refuse: bool = False) -> str:
    return f"""
        class Driver:
            def before_discard_draft(self, draft):
                with open({str(path)!r}, "a") as log:
                    log.write(draft.id + "\\n")
                if {refuse!r}:
                    raise RuntimeError("this draft must be reviewed first")
    """


def test_edit_runs_the_discard_hook_of_the_expired_draft_it_replaces(serve_with_driver, tmp_path):
    hooks = tmp_path / "hooks.txt"
    with serve_with_driver(_recording_driver(hooks)) as server:
        _alice(server).create()
        _alice(server).call("EditReport", id=ORIGINAL)
    with serve_with_driver(_recording_driver(hooks), clock_offset=31 * DAY) as server:
        _alice(server).call("EditReport", id=ORIGINAL)
    assert hooks.read_text().split() == [DRAFT]


def test_the_service_purges_expired_drafts_after_their_hook_and_logs_it(
    serve_with_driver, tmp_path
):
    hooks = tmp_path / "hooks.txt"
    with serve_with_driver(_recording_driver(hooks)) as server:
        alice, bob = _alice(server), Client.of(server, "user:bob")
        alice.create()
        alice.call("EditReport", id=ORIGINAL)
        bob.call("EditReport", id=ORIGINAL)
    with (
        watch_log("shared.purge") as purged,
        serve_with_driver(
            _recording_driver(hooks), clock_offset=31 * DAY, purge_interval=0.05
        ) as server,
    ):
        purged.wait_for("purged 2 expired report drafts")
        alice = _alice(server)
        assert _reason(lambda: alice.call("GetReportDraft", id=ORIGINAL))[1] == "DRAFT_NOT_FOUND"
        assert alice.call("GetReport", id=ORIGINAL).name == "Sales Dashboard"
    assert sorted(hooks.read_text().split()) == sorted([DRAFT, "user:bob:sales-dashboard-draft"])


def test_an_expired_draft_whose_driver_refuses_is_kept_and_still_expired(
    serve_with_driver, tmp_path
):
    hooks = tmp_path / "hooks.txt"
    with serve_with_driver(_recording_driver(hooks, refuse=True)) as server:
        _alice(server).create()
        _alice(server).call("EditReport", id=ORIGINAL)
    with (
        watch_log("report_service.purges", logging.WARNING) as warnings,
        serve_with_driver(_recording_driver(hooks, refuse=True), clock_offset=31 * DAY) as server,
    ):
        assert server.purger.run_once()["expired report drafts"] == 0
        assert warnings.matching("kept expired draft", DRAFT)
        gone = _reason(lambda: _alice(server).call("GetReportDraft", id=ORIGINAL))
        assert gone[1] == "DRAFT_EXPIRED"


def test_with_a_ttl_of_zero_drafts_never_expire(at):
    with at(draft_ttl=0) as server:
        alice = _alice(server)
        alice.create()
        draft = alice.call("EditReport", id=ORIGINAL)
    assert not draft.HasField("expire_time")
    with at(days=400, draft_ttl=0) as server:
        assert "expired report drafts" not in server.purger.run_once()
        assert _alice(server).call("GetReportDraft", id=ORIGINAL) == draft


def test_request_ids_are_remembered_for_their_ttl_then_purged(at):
    rid = str(uuid.uuid4())
    with at() as server:
        alice = _alice(server)
        alice.create()
        first = alice.call("EditReport", id=ORIGINAL, request_id=rid)
        alice.call("DiscardReportDraft", id=ORIGINAL)
    with at(days=0.99) as server:  # within 24 h: the retry is answered, not run
        assert server.purger.run_once()["remembered request ids"] == 0
        assert _alice(server).call("EditReport", id=ORIGINAL, request_id=rid) == first
        assert _reason(lambda: _alice(server).call("GetReportDraft", id=ORIGINAL))[1] == (
            "DRAFT_NOT_FOUND"
        )
    with at(days=1.01) as server:
        assert server.purger.run_once()["remembered request ids"] == 1
        again = _alice(server).call("EditReport", id=ORIGINAL, request_id=rid)  # runs anew
        assert again.created_at != first.created_at
