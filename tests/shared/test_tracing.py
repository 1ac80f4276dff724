"""Tracing: a real service process exports its server spans to a real OTLP receiver."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
from opentelemetry.proto.trace.v1 import trace_pb2

from cohort_service.v1 import draft_service_pb2, draft_service_pb2_grpc
from shared.config import ConfigError, tracing_enabled
from tests.otlp import attributes, exporting_to, otlp_receiver
from tests.processes import service_process
from tests.support import bearer

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = ("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01")


@pytest.fixture
def receiver():
    with otlp_receiver() as found:
        yield found


def test_spans_carry_the_callers_trace_the_method_and_the_code_the_client_got(
    receiver, sqlite_url, tmp_path
):
    found, endpoint = receiver
    env = exporting_to(endpoint)
    subject = f"user:trace-{uuid.uuid4().hex[:8]}"
    alice = (*bearer(subject, ("cohort:read", "cohort:write")), TRACEPARENT)
    with service_process(
        "cohort-service", sqlite_url, tmp_path / "s.log", env=env, args=("--log-format", "json")
    ) as service:
        with service.channel() as channel:
            stub = draft_service_pb2_grpc.CohortDraftServiceStub(channel)
            stub.ListCohortDrafts(draft_service_pb2.ListCohortDraftsRequest(), metadata=alice)
            ok = found.take(1)[0]
            with pytest.raises(grpc.RpcError) as caught:
                stub.GetCohortDraft(
                    draft_service_pb2.GetCohortDraftRequest(draft_id="42"), metadata=alice
                )
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            refused = found.take(1)[0]
            with pytest.raises(grpc.RpcError) as caught:
                stub.ListCohortDrafts(draft_service_pb2.ListCohortDraftsRequest())
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            anonymous = found.take(1)[0]
        assert service.stop() == 0
        access = [
            line
            for line in map(json.loads, filter(None, service.log().splitlines()))
            if line.get("logger") == "shared.access"
        ]
    # The log lines of a call name its server span, not the caller's.
    assert [(line["trace_id"], line["span_id"]) for line in access] == [
        (span.trace_id.hex(), span.span_id.hex()) for span in (ok, refused, anonymous)
    ]
    service_name = "cohort_service.v1.CohortDraftService"
    for span in (ok, refused):
        assert span.trace_id.hex() == TRACE_ID
        assert span.parent_span_id.hex() == PARENT_ID
        assert span.kind == trace_pb2.Span.SPAN_KIND_SERVER
        assert attributes(span)["enduser.id"] == subject
    assert ok.name == f"{service_name}/ListCohortDrafts"
    assert attributes(ok) == {
        "rpc.system": "grpc",
        "rpc.service": service_name,
        "rpc.method": "ListCohortDrafts",
        "rpc.grpc.status_code": 0,
        "enduser.id": subject,
    }
    assert attributes(refused)["rpc.method"] == "GetCohortDraft"
    assert attributes(refused)["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    # OpenTelemetry's gRPC conventions: a client's mistake leaves a server span's status unset.
    assert refused.status.code == trace_pb2.Status.STATUS_CODE_UNSET
    # No traceparent: a trace of its own; no principal: no enduser.id.
    assert anonymous.trace_id.hex() != TRACE_ID and not anonymous.parent_span_id
    assert attributes(anonymous)["rpc.grpc.status_code"] == 16
    assert "enduser.id" not in attributes(anonymous)


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, True),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
                "OTEL_TRACES_EXPORTER": "none",
            },
            False,
        ),
    ],
)
def test_tracing_is_off_unless_an_exporter_or_endpoint_is_configured(environ, enabled):
    assert tracing_enabled(environ) is enabled


def test_an_unknown_traces_exporter_is_a_clear_error():
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER must be otlp or none"):
        tracing_enabled({"OTEL_TRACES_EXPORTER": "zipkin"})
