"""GetReport answers from serialized messages cached by the row they were built from
(report_service.store): every change shows at once, and every call is checked as before."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2

from report_service import store
from report_service.server import SERVICE
from report_service.v1 import report_pb2
from tests.report_service.support import Client, struct
from tests.support import days_ahead, failure

ORIGINAL = "team:sales-dashboard"
DRAFT = "user:alice:sales-dashboard-draft"


def _update(client: Client, report_id: str, paths: list[str], **fields) -> report_pb2.Report:
    return client.call(
        "UpdateReport",
        report=report_pb2.Report(id=report_id, **fields),
        update_mask=field_mask_pb2.FieldMask(paths=paths),
    )


def _reason(call) -> tuple:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    found = failure(caught.value)
    return found.code, found.reason


def test_get_report_answers_each_change_of_the_report_its_datasets_and_its_original(alice, bob):
    alice.create(id=ORIGINAL)
    assert alice.call("GetReport", id=ORIGINAL) == alice.call("GetReport", id=ORIGINAL)

    renamed = _update(alice, ORIGINAL, ["name"], name="Renamed")
    assert alice.call("GetReport", id=ORIGINAL) == renamed

    datasets = [report_pb2.ReportDataset(dataset_id="d1", alias="one")]
    _update(alice, ORIGINAL, ["datasets"], datasets=datasets)
    assert list(alice.call("GetReport", id=ORIGINAL).datasets) == datasets

    draft = alice.call("EditReport", id=ORIGINAL)
    assert alice.call("GetReport", id=DRAFT) == draft
    assert not draft.outdated
    # The draft's row is unchanged; only its original is: the draft now reads as outdated.
    _update(bob, ORIGINAL, ["defn"], defn=struct({"changed": True}))
    assert alice.call("GetReport", id=DRAFT).outdated


def test_another_principals_draft_stays_not_found_after_its_owner_read_it(alice, bob):
    alice.create(id=ORIGINAL)
    alice.call("EditReport", id=ORIGINAL)
    alice.call("GetReport", id=DRAFT)
    assert _reason(lambda: bob.call("GetReport", id=DRAFT)) == (
        grpc.StatusCode.NOT_FOUND,
        "REPORT_NOT_FOUND",
    )


def test_a_draft_read_before_it_expired_is_draft_expired_after(database_url):
    at = days_ahead(SERVICE, database_url)
    with at() as server:
        alice = Client.of(server, "user:alice")
        alice.create(id=ORIGINAL)
        alice.call("EditReport", id=ORIGINAL)
        alice.call("GetReport", id=DRAFT)
    with at(days=31) as server:
        alice = Client.of(server, "user:alice")
        assert _reason(lambda: alice.call("GetReport", id=DRAFT)) == (
            grpc.StatusCode.NOT_FOUND,
            "DRAFT_EXPIRED",
        )


@pytest.mark.parametrize(
    "large",
    [
        {"defn": struct({"text": "x" * 5000})},
        {
            "datasets": [
                report_pb2.ReportDataset(dataset_id=f"d{n:04d}", alias="a") for n in range(600)
            ]
        },
    ],
    ids=["defn", "datasets"],
)
def test_a_report_past_the_size_bound_is_answered_but_not_kept(alice, large):
    store._serialized_report.cache_clear()
    alice.create(id="team:small")
    alice.create(id="team:large", **large)
    assert alice.call("GetReport", id="team:small").id == "team:small"
    assert store._serialized_report.cache_info().currsize == 1
    report = alice.call("GetReport", id="team:large")
    assert report.defn == large.get("defn", report.defn)
    assert len(report.datasets) == len(large.get("datasets", report.datasets))
    assert store._serialized_report.cache_info().currsize == 1
