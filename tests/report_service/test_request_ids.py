"""request_id (AIP-155): a retry gets the first response and changes nothing; reuse is refused."""

from __future__ import annotations

import threading
import uuid

import grpc
import pytest

from report_service.models import RequestRecord
from report_service.requests import REQUEST_IDS
from report_service.v1 import report_pb2
from shared.errors import InvalidArgument
from shared.idempotency import RECORD_MAX_BYTES
from tests.report_service.support import WRITES, Client, struct, valid_report
from tests.support import failure, snapshot

ORIGINAL = "team:sales-dashboard"  # the original of support.WRITES


def _rid() -> str:
    return str(uuid.uuid4())


def _draft_of(client: Client, original: str = ORIGINAL) -> str:
    return client.call("EditReport", id=original).id


@pytest.mark.parametrize("rpc", sorted(WRITES))
def test_a_retry_of_every_write_gets_the_first_response_and_changes_nothing(alice, server, rpc):
    alice.create()
    fields = WRITES[rpc](_draft_of(alice))
    rid = _rid()

    first = alice.call(rpc, request_id=rid, **fields)
    after_first = snapshot(server.database)
    again = alice.call(rpc, request_id=rid, **fields)

    assert again == first
    assert snapshot(server.database) == after_first
    assert RequestRecord.select().count() == 1


def test_a_retried_commit_answers_the_first_commit_though_the_draft_is_gone(alice, server):
    alice.create()
    alice.call("UpdateReport", report=report_pb2.Report(id=_draft_of(alice), name="New name"))
    rid = _rid()

    committed = alice.call("CommitReportDraft", id=ORIGINAL, request_id=rid)
    retried = alice.call("CommitReportDraft", id=ORIGINAL, request_id=rid)

    assert retried == committed and committed.name == "New name"
    activities = alice.call("ListReportActivities", report_id=ORIGINAL).activities
    assert len(activities) == 1  # committed once
    with pytest.raises(grpc.RpcError) as caught:  # without the id, the draft is gone
        alice.call("CommitReportDraft", id=ORIGINAL)
    assert failure(caught.value).reason == "DRAFT_NOT_FOUND"


@pytest.mark.parametrize(
    ("second_rpc", "second_fields"),
    [
        ("UpdateReport", {"report": report_pb2.Report(id=ORIGINAL, name="Other name")}),
        ("DeleteReport", {"id": ORIGINAL}),  # same bytes as the first request's id, other RPC
    ],
    ids=["other fields", "other RPC"],
)
def test_a_request_id_reused_for_another_request_is_refused_and_changes_nothing(
    alice, server, second_rpc, second_fields
):
    alice.create()
    rid = _rid()
    alice.call("UpdateReport", report=report_pb2.Report(id=ORIGINAL, name="First"), request_id=rid)
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as caught:
        alice.call(second_rpc, request_id=rid, **second_fields)

    found = failure(caught.value)
    assert (found.code, found.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")
    assert found.fields == ["request_id"]
    assert snapshot(server.database) == before


@pytest.mark.parametrize(
    "bad",
    [
        "not-a-uuid",
        "{12345678-1234-5678-1234-567812345678}",
        "12345678123456781234567812345678",
        "urn:uuid:12345678-1234-5678-1234-567812345678",
        "12345678-1234-5678-1234-56781234567",
        " 12345678-1234-5678-1234-567812345678",
    ],
)
def test_a_request_id_that_is_not_a_uuid_is_invalid_naming_the_field(alice, server, bad):
    alice.create()
    before = snapshot(server.database)
    with pytest.raises(grpc.RpcError) as caught:
        alice.call("EditReport", id=ORIGINAL, request_id=bad)
    found = failure(caught.value)
    assert found.code == grpc.StatusCode.INVALID_ARGUMENT
    assert found.fields == ["request_id"]
    assert snapshot(server.database) == before


def test_a_request_id_in_capitals_is_the_same_id(alice):
    alice.create()
    rid = _rid()
    first = alice.call("EditReport", id=ORIGINAL, request_id=rid)
    again = alice.call("EditReport", id=ORIGINAL, request_id=rid.upper())
    assert again == first
    assert RequestRecord.get().key == rid


def test_another_principal_using_the_same_uuid_neither_sees_nor_blocks_the_first(alice, bob):
    alice.create()
    rid = _rid()
    alices = alice.call("EditReport", id=ORIGINAL, request_id=rid)
    # bob's request with alice's id: his own call, with his own answer
    bobs = bob.call("EditReport", id=ORIGINAL, request_id=rid)
    assert bobs.owner_id == "user:bob" and bobs.id != alices.id
    assert alice.call("EditReport", id=ORIGINAL, request_id=rid) == alices
    assert RequestRecord.select().count() == 2


def test_a_failed_call_is_not_remembered_and_may_be_retried_with_its_id(alice, server):
    rid = _rid()
    with pytest.raises(grpc.RpcError) as caught:
        alice.call("EditReport", id=ORIGINAL, request_id=rid)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert RequestRecord.select().count() == 0
    alice.create()
    assert alice.call("EditReport", id=ORIGINAL, request_id=rid).editing_id == ORIGINAL


def test_a_remembered_response_is_within_the_record_budget(alice, server):
    # A report near the 1 MiB budget: its response, with the output-only fields, is stored.
    big = valid_report(id="team:" + "b" * 500, defn=struct({"text": "x" * 1_000_000}))
    rid = _rid()
    created = alice.call("CreateReport", report=big, request_id=rid)
    assert alice.call("CreateReport", report=big, request_id=rid) == created
    stored = len(bytes(RequestRecord.get().response))
    assert created.ByteSize() == stored <= RECORD_MAX_BYTES


def test_a_response_over_the_record_budget_is_refused_not_stored(server):
    # Every RPC's response fits (the resource budget); the record's own check is the backstop.
    with server.database.atomic() as transaction:
        assert REQUEST_IDS.claim("user:alice", "k", "f") is None
        with pytest.raises(InvalidArgument) as caught:
            REQUEST_IDS.remember("user:alice", "k", b"x" * (RECORD_MAX_BYTES + 1))
        transaction.rollback()
    assert caught.value.reason == "SIZE_BUDGET_EXCEEDED"
    assert caught.value.violations[0][0] == "request_id"


def test_concurrent_repeats_take_effect_once_and_all_answer_the_same(alice, server):
    alice.create()
    _draft_of(alice)
    rid = _rid()
    start = threading.Barrier(6)
    answers: list = []

    def commit() -> None:
        start.wait()
        try:
            answers.append(alice.call("CommitReportDraft", id=ORIGINAL, request_id=rid))
        except grpc.RpcError as error:
            answers.append(error.code())

    threads = [threading.Thread(target=commit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(answers) == 6 and all(answer == answers[0] for answer in answers), answers
    assert isinstance(answers[0], report_pb2.Report)
    assert len(alice.call("ListReportActivities", report_id=ORIGINAL).activities) == 1
