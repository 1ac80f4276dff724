"""Size budgets (shared.budget): no write makes a report a default client cannot read back,
list pages are bounded by bytes, and GetReport does not repeat defn once per dataset."""

from __future__ import annotations

import tracemalloc

import grpc
import pytest
from google.protobuf import field_mask_pb2

from report_service.v1 import report_pb2
from shared.budget import PAGE_MAX_BYTES, RESOURCE_MAX_BYTES, SIZE_BUDGET_EXCEEDED
from tests.report_service.support import Client, struct, valid_report
from tests.support import RunningService, failure, snapshot

ORIGINAL = "team:sales-dashboard"
LARGE = 700 * 1024  # bytes: one such field fits the budget, two do not


def _large(size: int = LARGE, tag: str = "x") -> dict:
    """A JSON object that serializes, as a Struct, to about size bytes."""
    return {"blob": tag * size}


def _refused(server: RunningService, client: Client, rpc: str, **fields):
    before = snapshot(server.database)
    with pytest.raises(grpc.RpcError) as caught:
        client.call(rpc, **fields)
    assert snapshot(server.database) == before
    error = failure(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT, error.message
    assert error.reason == SIZE_BUDGET_EXCEEDED
    assert error.metadata["limit_bytes"] == str(RESOURCE_MAX_BYTES)
    assert f"{RESOURCE_MAX_BYTES:,}" in error.violations[0][1], error.violations
    return error


def test_create_report_over_the_budget_is_refused_naming_the_largest_field(john, server):
    error = _refused(
        server,
        john,
        "CreateReport",
        report=valid_report(defn=struct(_large(2 * LARGE)), settings=struct(_large(1000))),
    )

    assert error.fields == ["report.defn"]


def test_update_report_that_would_exceed_the_budget_is_refused_and_changes_nothing(john, server):
    john.create(id=ORIGINAL, defn=struct(_large()))

    error = _refused(
        server,
        john,
        "UpdateReport",
        report=report_pb2.Report(id=ORIGINAL, settings=struct(_large())),
        update_mask=field_mask_pb2.FieldMask(paths=["settings"]),
    )

    assert error.fields == ["report.settings"]
    assert john.call("GetReport", id=ORIGINAL).ByteSize() < RESOURCE_MAX_BYTES


def test_put_report_draft_over_the_budget_is_refused_and_leaves_no_draft(john, server):
    john.create(id=ORIGINAL, settings=struct(_large()))

    error = _refused(
        server,
        john,
        "PutReportDraft",
        id=ORIGINAL,
        draft=report_pb2.ReportDraftInput(defn=struct(_large())),
    )

    assert error.fields == ["draft.defn"]


def test_view_settings_over_the_budget_are_refused(john, server):
    john.create(id=ORIGINAL)

    error = _refused(
        server,
        john,
        "UpdateUserReportSettings",
        report_id=ORIGINAL,
        settings=struct(_large(RESOURCE_MAX_BYTES + 1)),
    )

    assert error.fields == ["settings"]


def test_list_reports_pages_end_early_at_the_byte_budget_and_lose_nothing(john):
    ids = [f"team:big-{index}" for index in range(5)]
    for report_id in ids:
        john.create(id=report_id, defn=struct(_large()))

    seen, token, pages = [], "", 0
    while True:
        page = john.call("ListReports", page_size=50, page_token=token)
        assert page.ByteSize() <= PAGE_MAX_BYTES
        seen += [report.id for report in page.reports]
        pages += 1
        token = page.next_page_token
        if not token:
            break

    assert seen == ids
    assert pages >= 3  # 700 KiB each: at most two per page


def test_list_report_activities_pages_end_early_at_the_byte_budget(john):
    john.create(id=ORIGINAL)
    for index in range(4):
        john.call("EditReport", id=ORIGINAL)
        john.call(
            "PutReportDraft",
            id=ORIGINAL,
            draft=report_pb2.ReportDraftInput(defn=struct(_large(tag=str(index)))),
        )
        john.call("CommitReportDraft", id=ORIGINAL)

    seen, token = 0, ""
    while True:
        page = john.call("ListReportActivities", report_id=ORIGINAL, page_token=token)
        assert page.ByteSize() <= PAGE_MAX_BYTES
        seen += len(page.activities)
        token = page.next_page_token
        if not token:
            break

    assert seen == 4


def test_get_report_does_not_read_defn_once_per_dataset(john):
    """A 100 KB defn and 1,000 datasets: joined row by row, that was 100 MB read at once."""
    datasets = [report_pb2.ReportDataset(dataset_id=f"d{i}", alias="a") for i in range(1000)]
    john.create(id=ORIGINAL, defn=struct(_large(100_000)), datasets=datasets)
    john.call("GetReport", id=ORIGINAL)  # warm caches and compiled statements first

    tracemalloc.start()  # it traces the server's threads too: the server is in-process
    try:
        report = john.call("GetReport", id=ORIGINAL)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert [d.dataset_id for d in report.datasets] == [d.dataset_id for d in datasets]
    assert peak < 10 * 1024 * 1024, f"GetReport allocated {peak:,} bytes at its peak"


def test_a_page_of_small_reports_is_not_cut_by_the_byte_budget(john):
    """The estimates that cut a page before reading it are upper bounds, but not wild ones
    (16 KiB per report, as first written, cut pages at 128)."""
    for index in range(150):
        john.create(id=f"team:small-{index:03d}")

    page = john.call("ListReports", page_size=1000)

    assert len(page.reports) == 150
    assert not page.next_page_token


def test_delete_report_gives_its_drafts_to_the_discard_hook_a_page_at_a_time(serve_with_driver):
    """Every principal may draft a report, each draft up to the budget: the hook's drafts were
    all read at once (24 drafts of 400 KB: 16 MB traced, against 2.4 MB a page at a time)."""
    driver = """
        class Driver:
            def before_discard_draft(self, draft):
                pass
    """
    with serve_with_driver(driver) as running:
        owner = Client.of(running, "user:owner")
        owner.create(id=ORIGINAL)
        for index in range(24):
            Client.of(running, f"user:drafter{index}").call(
                "PutReportDraft",
                id=ORIGINAL,
                draft=report_pb2.ReportDraftInput(defn=struct(_large(400_000, tag=str(index)))),
            )

        tracemalloc.start()  # it traces the server's threads too: the server is in-process
        try:
            owner.call("DeleteReport", id=ORIGINAL)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert not owner.call("ListReports").reports
    assert peak < 4 * 1024 * 1024, f"DeleteReport allocated {peak:,} bytes at its peak"
