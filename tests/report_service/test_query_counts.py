"""ListReports and CommitReportDraft issue a fixed number of queries, whatever the row counts."""

from __future__ import annotations

from google.protobuf import field_mask_pb2

from report_service.v1 import report_pb2
from tests.report_service.support import Client, struct
from tests.support import count_queries

ORIGINAL = "team:sales-dashboard"


def _datasets(count: int, prefix: str = "d") -> list[report_pb2.ReportDataset]:
    return [
        report_pb2.ReportDataset(dataset_id=f"{prefix}{n}", alias=f"a{n}") for n in range(count)
    ]


def test_list_reports_costs_the_same_queries_for_1_and_50_reports(john, server):
    counts = []
    for first, total in ((0, 1), (1, 50)):
        for n in range(first, total):
            john.create(id=f"team:report-{n:03d}", datasets=_datasets(3))
            john.call("EditReport", id=f"team:report-{n:03d}")  # drafts are never listed
        with count_queries(server.database) as counter:
            assert len(john.call("ListReports", page_size=100).reports) == total
        counts.append(counter.count)
    assert counts[0] == counts[1]


def _commit_count(john: Client, server, report_id: str, datasets: int, users: int) -> int:
    """Queries of committing john's draft of a new report with datasets and users' settings."""
    john.create(id=report_id, datasets=_datasets(datasets))
    for n in range(users):
        Client.of(server, f"user:viewer{n}").call(
            "UpdateUserReportSettings", report_id=report_id, settings=struct({"n": n})
        )
    draft = john.call("EditReport", id=report_id)
    john.call(
        "UpdateReport",
        report=report_pb2.Report(id=draft.id, name="Renamed", datasets=_datasets(datasets, "new")),
        update_mask=field_mask_pb2.FieldMask(paths=["name", "datasets"]),
    )
    with count_queries(server.database) as counter:
        john.call("CommitReportDraft", id=report_id)
    return counter.count


def test_commit_costs_the_same_queries_for_1_and_30_datasets(john, server):
    assert _commit_count(john, server, "team:a", 1, 1) == _commit_count(
        john, server, "team:b", 30, 1
    )


def test_commit_costs_the_same_queries_for_1_and_10_users_settings(john, server):
    assert _commit_count(john, server, "team:a", 2, 1) == _commit_count(
        john, server, "team:b", 2, 10
    )


def test_get_report_reads_the_report_and_its_datasets_in_one_statement(john, server):
    john.create(id=ORIGINAL, datasets=_datasets(3))
    john.create(id="team:no-datasets", datasets=[])
    for report_id, datasets in ((ORIGINAL, ["d0", "d1", "d2"]), ("team:no-datasets", [])):
        with count_queries(server.database) as counter:
            report = john.call("GetReport", id=report_id)
        assert [d.dataset_id for d in report.datasets] == datasets
        assert len(counter.statements) == 1, counter.statements
