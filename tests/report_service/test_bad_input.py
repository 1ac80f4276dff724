"""Bad input: INVALID_ARGUMENT naming each bad field, NOT_FOUND for unknown ids; nothing changes."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2

from report_service.v1 import report_pb2
from tests.report_service.support import Client, valid_report
from tests.support import RunningService, failure, snapshot

ORIGINAL = "team:sales-dashboard"

# Every RPC that names a report, with the request that names report_id, and the field's path.
NAMING_RPCS = [
    ("GetReport", lambda report_id: {"id": report_id}, "id"),
    ("DeleteReport", lambda report_id: {"id": report_id}, "id"),
    ("EditReport", lambda report_id: {"id": report_id}, "id"),
    ("GetReportDraft", lambda report_id: {"id": report_id}, "id"),
    ("PutReportDraft", lambda report_id: {"id": report_id}, "id"),
    ("DiscardReportDraft", lambda report_id: {"id": report_id}, "id"),
    ("CommitReportDraft", lambda report_id: {"id": report_id}, "id"),
    ("ListReportActivities", lambda report_id: {"report_id": report_id}, "report_id"),
    ("GetUserReportSettings", lambda report_id: {"report_id": report_id}, "report_id"),
    ("UpdateUserReportSettings", lambda report_id: {"report_id": report_id}, "report_id"),
    (
        "UpdateReport",
        lambda report_id: {"report": report_pb2.Report(id=report_id, name="New")},
        "report.id",
    ),
]


def _fails(server: RunningService, client: Client, rpc: str, **fields):
    """The failure of a call that must change nothing."""
    before = snapshot(server.database)
    with pytest.raises(grpc.RpcError) as caught:
        client.call(rpc, **fields)
    assert snapshot(server.database) == before
    return failure(caught.value)


@pytest.mark.parametrize("bad_id", ["", "x" * 513], ids=["empty", "513 characters"])
@pytest.mark.parametrize(
    ("rpc", "request_for", "path"), NAMING_RPCS, ids=[r[0] for r in NAMING_RPCS]
)
def test_an_empty_or_oversized_report_id_is_invalid_argument(
    server, john, rpc, request_for, path, bad_id
):
    john.create()
    john.call("EditReport", id=ORIGINAL)

    error = _fails(server, john, rpc, **request_for(bad_id))

    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert error.fields == [path]
    assert "1-512 characters" in error.violations[0][1]


@pytest.mark.parametrize(
    ("rpc", "request_for", "path"), NAMING_RPCS, ids=[r[0] for r in NAMING_RPCS]
)
def test_an_unknown_report_id_is_not_found(server, john, rpc, request_for, path):
    john.create()

    error = _fails(server, john, rpc, **request_for("team:unknown"))

    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "REPORT_NOT_FOUND")
    assert "team:unknown" in error.message


def test_a_512_character_report_id_is_accepted(john):
    report_id = "team:" + "x" * 507

    assert john.create(id=report_id).id == report_id


def test_create_report_names_every_bad_field_at_once(server, john):
    report = valid_report(
        id="",
        type="",
        name="n" * 201,
        template_id="t" * 513,
        datasets=[
            report_pb2.ReportDataset(dataset_id="orders", alias="a" * 201),
            report_pb2.ReportDataset(dataset_id=""),
        ],
        snapshot=report_pb2.SnapshotSettings(schedule="s" * 201, retain_count=-1),
    )

    error = _fails(server, john, "CreateReport", report=report)

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.fields == [
        "report.id",
        "report.type",
        "report.name",
        "report.template_id",
        "report.datasets[0].alias",
        "report.datasets[1].dataset_id",
        "report.snapshot.schedule",
        "report.snapshot.retain_count",
    ]
    assert dict(error.violations)["report.name"] == "must be 1-200 characters long, got 201"


def test_create_report_without_a_report_names_the_required_fields(server, john):
    error = _fails(server, john, "CreateReport")

    assert error.fields == ["report.id", "report.type", "report.name"]


def test_create_report_refuses_a_blank_name(server, john):
    error = _fails(server, john, "CreateReport", report=valid_report(name="   "))

    assert error.violations == [("report.name", "must not be blank")]


def test_create_report_refuses_more_than_1000_datasets(server, john):
    datasets = [report_pb2.ReportDataset(dataset_id=f"d{n}") for n in range(1001)]

    error = _fails(server, john, "CreateReport", report=valid_report(datasets=datasets))

    assert error.violations == [("report.datasets", "must have at most 1000 entries, got 1001")]


@pytest.mark.parametrize(
    ("path", "complaint"),
    [
        ("type", "`type` is immutable"),
        ("owner_id", "`owner_id` is output only"),
        ("created_at", "`created_at` is output only"),
        ("nope", "unknown field path `nope`"),
        ("snapshot.enabled", "unknown field path `snapshot.enabled`"),
        ("", "unknown field path ``"),
    ],
)
def test_a_malformed_update_mask_path_is_invalid_argument_naming_update_mask(
    server, john, path, complaint
):
    john.create()

    error = _fails(
        server,
        john,
        "UpdateReport",
        report=report_pb2.Report(id=ORIGINAL, name="New"),
        update_mask=field_mask_pb2.FieldMask(paths=["name", path]),
    )

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.fields == ["update_mask"]
    assert error.violations[0][1].startswith(complaint)


def test_update_report_names_bad_mask_paths_and_bad_values_together(server, john):
    john.create()

    error = _fails(
        server,
        john,
        "UpdateReport",
        report=report_pb2.Report(id=ORIGINAL, name=""),
        update_mask=field_mask_pb2.FieldMask(paths=["name", "id", "links"]),
    )

    assert error.fields == ["update_mask", "update_mask", "report.name"]


def test_put_report_draft_names_its_bad_draft_fields(server, john):
    john.create()

    error = _fails(
        server,
        john,
        "PutReportDraft",
        id=ORIGINAL,
        draft=report_pb2.ReportDraftInput(template_id="t" * 513, query_id="q" * 513),
    )

    assert error.fields == ["draft.template_id", "draft.query_id"]


@pytest.mark.parametrize("rpc", ["ListReports", "ListReportActivities"])
def test_a_page_token_that_was_not_issued_by_the_list_is_invalid_argument(server, john, rpc):
    for n in range(3):
        john.create(id=f"team:report-{n}")
    report_token = john.call("ListReports", page_size=1).next_page_token
    fields = {"report_id": "team:report-0"} if rpc == "ListReportActivities" else {}

    for token in ("not a token!", "WzEsMiwzXQ", report_token + "x"):
        error = _fails(server, john, rpc, page_token=token, **fields)
        assert (error.code, error.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])
    if rpc == "ListReportActivities":
        error = _fails(server, john, rpc, page_token=report_token, **fields)
        assert error.fields == ["page_token"]


@pytest.mark.parametrize("rpc", ["ListReports", "ListReportActivities"])
def test_a_negative_page_size_is_invalid_argument(server, john, rpc):
    john.create()
    fields = {"report_id": ORIGINAL} if rpc == "ListReportActivities" else {}

    error = _fails(server, john, rpc, page_size=-1, **fields)

    assert (error.code, error.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_size"])
