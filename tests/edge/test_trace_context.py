"""Trace context through the edge: a `traceparent` header sent with a REST call is the
parent of the service's server span, exported to a real OTLP receiver."""

from __future__ import annotations

import httpx
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.edge.support import auth, edge_process
from tests.otlp import attributes, exporting_to, receiving
from tests.processes import free_port, service_process

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


def test_a_traceparent_sent_over_http_is_the_parent_of_the_services_span(sqlite_url, tmp_path):
    with (
        receiving() as (found, endpoint),
        service_process(
            "report-service", sqlite_url, tmp_path / "report.log", env=exporting_to(endpoint)
        ) as report,
        edge_process(f"127.0.0.1:{free_port()}", report.address, tmp_path / "edge.log") as edge,
    ):
        answer = httpx.get(
            f"{edge.url}/api/reports/team:traced",
            headers={**auth(), "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
            timeout=30,
        )
        assert answer.status_code == 404  # no such report: the span is there all the same
        # The edge's health checks make spans of their own, in traces of their own.
        span = found.server_span("report_service.v1.ReportService/GetReport")
    assert span.kind == trace_pb2.Span.SPAN_KIND_SERVER
    assert span.trace_id.hex() == TRACE_ID
    assert span.parent_span_id.hex() == PARENT_ID
    assert attributes(span)["enduser.id"] == "user:john.doe"
