"""Limits at the edge, set by flags: requests per second per client address, the largest REST
body, and how long a call may take."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import httpx
import pytest

from report_service.v1 import report_service_pb2, report_service_pb2_grpc
from tests.edge.support import Edge, SlowReports, auth, edge_process
from tests.processes import free_port

RATE = 5


@pytest.fixture(scope="module")
def limited(tmp_path_factory) -> Iterator[Edge]:
    """An edge with every limit set, before a report-service whose GetReport is slow."""
    log = tmp_path_factory.mktemp("limits") / "edge.log"
    with (
        SlowReports.serving() as (_, report),
        edge_process(
            f"127.0.0.1:{free_port()}", report, log,
            "--rate-limit", str(RATE), "--max-request-bytes", "2048", "--call-timeout", "1",
        ) as edge,
    ):  # fmt: skip
        yield edge


def client(edge: Edge, source: str) -> httpx.Client:
    """A client calling from source, a loopback address of its own: a client of its own."""
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=edge.url, transport=transport, headers=auth(), timeout=30)


def test_a_client_past_its_rate_is_refused_429_while_another_client_is_not(limited):
    with client(limited, "127.0.0.3") as greedy, client(limited, "127.0.0.4") as other:
        started = time.monotonic()
        answers = [greedy.get("/api/reports") for _ in range(4 * RATE)]
        elapsed = time.monotonic() - started
        refused = [a for a in answers if a.status_code == 429]
        assert refused, [a.status_code for a in answers]
        assert refused[0].json()["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        # At most a burst, then RATE a second: never more than the buckets filled meanwhile.
        assert len(answers) - len(refused) <= RATE * (2 + int(elapsed))
        assert other.get("/api/reports").status_code != 429  # a bucket of its own


def test_a_grpc_client_past_its_rate_gets_resource_exhausted(limited):
    with grpc.insecure_channel(limited.address) as channel:
        reports = report_service_pb2_grpc.ReportServiceStub(channel)
        codes = set()
        for _ in range(4 * RATE):
            try:
                reports.ListReports(report_service_pb2.ListReportsRequest(), timeout=30)
            except grpc.RpcError as error:
                codes.add(error.code())
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes


def test_a_rest_body_over_the_limit_is_refused_before_any_service(limited):
    with client(limited, "127.0.0.5") as http:
        body = {"id": "team:x", "type": "dashboard", "name": "x" * 3000}
        refused = http.post("/api/reports", json=body)
        assert refused.status_code == 413
        assert refused.json()["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        # Under the limit it goes on to the service (which here implements only GetReport).
        small = http.post("/api/reports", json={"id": "team:x", "type": "t", "name": "x"})
        assert small.status_code == 501


def test_a_call_longer_than_the_call_timeout_is_504(limited):
    with client(limited, "127.0.0.6") as http:
        answer = http.get("/api/reports/team:slow")
        assert answer.status_code == 504
        assert answer.json()["code"] == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
