"""gRPC and gRPC-Web through the edge's one port: generated stubs and `buf curl` as if the edge
were the services, sonora's gRPC-Web client as a browser's, and CORS for configured origins."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import grpc
import httpx
import pytest
from sonora.client import WebChannel

from cohort_service.v1 import catalog_service_pb2, catalog_service_pb2_grpc
from draft_edge.descriptors import DESCRIPTOR_SET
from report_service.v1 import report_pb2, report_service_pb2, report_service_pb2_grpc
from tests.edge.support import BROWSER_ORIGIN, TakesStubFlags, auth, token
from tests.support import bearer, failure

BUF = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "buf"


class BrowserChannel(TakesStubFlags, WebChannel):
    """sonora's gRPC-Web channel."""


def test_generated_stubs_call_both_services_through_the_edge_with_rich_errors(edge):
    with grpc.insecure_channel(edge.address) as channel:
        reports = report_service_pb2_grpc.ReportServiceStub(channel)
        created = reports.CreateReport(
            report_service_pb2.CreateReportRequest(
                report=report_pb2.Report(id="team:grpc", type="dashboard", name="Via gRPC")
            ),
            metadata=bearer("user:grpc"),
            timeout=30,
        )
        assert created.owner_id == "user:grpc"
        draft = reports.EditReport(
            report_service_pb2.EditReportRequest(id="team:grpc"), metadata=bearer("user:grpc")
        )
        assert draft.id == "user:grpc:grpc-draft"
        with pytest.raises(grpc.RpcError) as caught:
            reports.GetReport(
                report_service_pb2.GetReportRequest(id="team:none"), metadata=bearer()
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert failure(caught.value).reason == "REPORT_NOT_FOUND"  # details came through
        catalog = catalog_service_pb2_grpc.CohortCatalogServiceStub(channel)
        catalog.ListDepartments(catalog_service_pb2.ListDepartmentsRequest(), metadata=bearer())


@pytest.mark.skipif(not BUF.exists(), reason="buf is installed by scripts/setup")
def test_buf_curl_calls_through_the_edge_with_the_descriptor_set_as_schema(edge):
    def curl(method: str, data: dict) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge",
             "--schema", str(DESCRIPTOR_SET), "-H", f"authorization: Bearer {token('user:buf')}",
             "-d", json.dumps(data), f"{edge.url}/report_service.v1.ReportService/{method}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    created = curl("CreateReport", {"report": {"id": "team:buf", "type": "t", "name": "Buf"}})
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["ownerId"] == "user:buf"
    missing = curl("GetReport", {"id": "team:none"})
    assert missing.returncode != 0
    assert '"code": "not_found"' in missing.stderr


def test_a_grpc_web_client_calls_with_the_generated_stubs_and_reads_errors(edge):
    with httpx.Client(base_url=edge.url) as http:  # the original, created over REST
        http.post(
            "/api/reports",
            json={"id": "team:web", "type": "dashboard", "name": "Web"},
            headers=auth("user:web"),
        )
    with BrowserChannel(edge.url) as channel:
        reports = report_service_pb2_grpc.ReportServiceStub(channel)
        metadata = [("authorization", f"Bearer {token('user:web')}"), ("origin", BROWSER_ORIGIN)]
        draft, call = reports.EditReport.with_call(
            report_service_pb2.EditReportRequest(id="team:web"), metadata=metadata, timeout=30
        )
        assert (draft.id, draft.editing_id) == ("user:web:web-draft", "team:web")
        headers = dict(call.initial_metadata())
        assert headers["content-type"].startswith("application/grpc-web")
        assert headers["access-control-allow-origin"] == BROWSER_ORIGIN
        assert "grpc-status-details-bin" in headers["access-control-expose-headers"]
        with pytest.raises(grpc.RpcError) as caught:
            reports.GetReport(
                report_service_pb2.GetReportRequest(id="team:none"), metadata=metadata
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert caught.value.details() == "there is no report 'team:none'"
        with pytest.raises(grpc.RpcError) as caught:
            reports.GetReport(report_service_pb2.GetReportRequest(id="team:web"))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _preflight(edge, origin: str, path: str) -> httpx.Response:
    return httpx.options(
        f"{edge.url}{path}",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type,x-grpc-web",
        },
        timeout=30,
    )


@pytest.mark.parametrize(
    "path", ["/report_service.v1.ReportService/EditReport", "/api/reports/team:x/_edit"]
)
def test_cors_preflight_is_allowed_for_a_configured_origin(edge, path):
    allowed = _preflight(edge, BROWSER_ORIGIN, path)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == BROWSER_ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    requested = {"authorization", "content-type", "x-grpc-web"}
    granted = {h.strip() for h in allowed.headers["access-control-allow-headers"].split(",")}
    assert requested <= granted
    answer = httpx.get(  # and the reply itself may be read by the page
        f"{edge.url}/api/reports", headers={**auth(), "origin": BROWSER_ORIGIN}, timeout=30
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == BROWSER_ORIGIN


@pytest.mark.parametrize(
    "path", ["/report_service.v1.ReportService/EditReport", "/api/reports/team:x/_edit"]
)
def test_cors_preflight_is_refused_for_another_origin(edge, path):
    refused = _preflight(edge, "https://elsewhere.example", path)
    assert "access-control-allow-origin" not in refused.headers
    answer = httpx.get(
        f"{edge.url}/api/reports",
        headers={**auth(), "origin": "https://elsewhere.example"},
        timeout=30,
    )
    assert "access-control-allow-origin" not in answer.headers  # the browser hides the reply
