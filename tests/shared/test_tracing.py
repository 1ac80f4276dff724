"""Tracing: real service processes export their spans to a real OTLP receiver (tests/otlp.py)."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from cohort_service.v1 import draft_service_pb2, draft_service_pb2_grpc
from report_service.v1 import report_service_pb2, report_service_pb2_grpc
from shared.calls import ATTEMPTS
from shared.config import ConfigError, tracing_enabled
from shared.tracing import SPAN_FLUSH_SECONDS
from tests.conftest import _postgres_test_url
from tests.otlp import Receiver, receiving
from tests.processes import free_port, service_process
from tests.report_service.support import create_changed_draft, report_row_locked, write_driver
from tests.support import bearer

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = ("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01")
EXPORT_SOON = {"OTEL_BSP_SCHEDULE_DELAY": "100"}  # milliseconds: spans leave soon after each call
REPORTS = "report_service.v1.ReportService"
REPORT_ID = "team:traced"
RECORDING_DRIVER = """
    class Driver:
        def after_commit_draft(self, original, draft, changes):
            changes["name"] = "Named by the driver"
"""


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, dict[str, str]]]:
    """The receiver, and the environment that makes a service process export to it."""
    with receiving() as (found, endpoint):
        yield (
            found,
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
                **EXPORT_SOON,
            },
        )


def attributes(span: trace_pb2.Span | trace_pb2.Span.Event) -> dict[str, object]:
    found: dict[str, object] = {}
    for attribute in span.attributes:
        value = attribute.value
        found[attribute.key] = getattr(value, value.WhichOneof("value"))
    return found


# ---------------------------------------------------------------------------
# The server span
# ---------------------------------------------------------------------------


def test_spans_carry_the_callers_trace_the_method_and_the_code_the_client_got(
    receiver, sqlite_url, tmp_path
):
    found, env = receiver
    subject = f"user:trace-{uuid.uuid4().hex[:8]}"
    alice = (*bearer(subject, ("cohort:read", "cohort:write")), TRACEPARENT)
    service_name = "cohort_service.v1.CohortDraftService"
    with service_process(
        "cohort-service", sqlite_url, tmp_path / "s.log", env=env, args=("--log-format", "json")
    ) as service:
        with service.channel() as channel:
            stub = draft_service_pb2_grpc.CohortDraftServiceStub(channel)
            stub.ListCohortDrafts(draft_service_pb2.ListCohortDraftsRequest(), metadata=alice)
            ok = found.server_span(f"{service_name}/ListCohortDrafts")
            with pytest.raises(grpc.RpcError) as caught:
                stub.GetCohortDraft(
                    draft_service_pb2.GetCohortDraftRequest(draft_id="42"), metadata=alice
                )
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            refused = found.server_span(f"{service_name}/GetCohortDraft")
            with pytest.raises(grpc.RpcError) as caught:
                stub.ListCohortDrafts(draft_service_pb2.ListCohortDraftsRequest())
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            anonymous = found.wait_for(
                lambda span: span.name == ok.name and span.trace_id != ok.trace_id
            )
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
    for span in (ok, refused):
        assert span.trace_id.hex() == TRACE_ID
        assert span.parent_span_id.hex() == PARENT_ID
        assert span.kind == trace_pb2.Span.SPAN_KIND_SERVER
        assert attributes(span)["enduser.id"] == subject
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


def test_a_response_stream_has_a_span_that_lasts_as_long_as_the_stream(
    receiver, sqlite_url, tmp_path
):
    found, env = receiver
    with service_process("cohort-service", sqlite_url, tmp_path / "s.log", env=env) as service:
        with service.channel() as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=""), metadata=(TRACEPARENT,)
            )
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            opened = time.time_ns()
            time.sleep(0.5)  # the stream stays open
            watch.cancel()
            span = found.server_span("grpc.health.v1.Health/Watch")
        assert service.stop() == 0
    assert (span.trace_id.hex(), span.parent_span_id.hex()) == (TRACE_ID, PARENT_ID)
    assert span.start_time_unix_nano < opened < span.end_time_unix_nano - 400_000_000
    assert attributes(span) == {
        "rpc.system": "grpc",
        "rpc.service": "grpc.health.v1.Health",
        "rpc.method": "Watch",
        "rpc.grpc.status_code": grpc.StatusCode.CANCELLED.value[0],
    }


# ---------------------------------------------------------------------------
# Inside a call: transactions, statements, driver hooks, retries
# ---------------------------------------------------------------------------


def _report_service(tmp_path, url: str, env: dict[str, str]):
    """A report-service process with RECORDING_DRIVER as the `dashboard` driver."""
    drivers = tmp_path / "drivers"
    drivers.mkdir()
    write_driver(drivers, RECORDING_DRIVER)
    return service_process(
        "report-service", url, tmp_path / "s.log", env={**env, "PYTHONPATH": str(drivers)}
    )


def _commit(stub, metadata) -> report_service_pb2.CommitReportDraftRequest:
    return stub.CommitReportDraft(
        report_service_pb2.CommitReportDraftRequest(id=REPORT_ID),
        metadata=(*metadata, TRACEPARENT),
        timeout=30,
    )


def test_a_calls_transaction_statements_and_driver_hook_arrive_as_a_tree(
    receiver, database_url, tmp_path
):
    found, env = receiver
    engine = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    alice = bearer("user:alice")
    with _report_service(tmp_path, database_url, env) as service:
        with service.channel() as channel:
            stub = report_service_pb2_grpc.ReportServiceStub(channel)
            create_changed_draft(stub, alice, REPORT_ID)
            assert _commit(stub, alice).name == "Named by the driver"
            call = found.server_span(f"{REPORTS}/CommitReportDraft")
        assert service.stop() == 0

    (transaction,) = found.children(call)
    assert transaction.name == "transaction"
    assert attributes(transaction) == {"db.system": engine, "transaction.outcome": "commit"}
    inside = found.children(transaction)
    statements = [span for span in inside if span.kind == trace_pb2.Span.SPAN_KIND_CLIENT]
    names = [span.name for span in statements]
    assert names[-1] == "COMMIT"
    # Before BEGIN, only what readies the connection: the pragmas of a thread's new SQLite
    # connection, the PostgreSQL pool's check of the one it hands out.
    for span in statements[: names.index("BEGIN")]:
        assert span.name == "PRAGMA" or attributes(span)["db.statement"] == "SELECT 1"
    assert {"SELECT", "UPDATE", "DELETE"} <= {span.name for span in statements}
    for statement in statements:
        assert attributes(statement)["db.system"] == engine
        assert attributes(statement)["db.statement"].startswith(statement.name)
    (hook,) = [span for span in inside if span.kind == trace_pb2.Span.SPAN_KIND_INTERNAL]
    assert hook.name == "report driver after_commit_draft"
    assert attributes(hook) == {"report.type": "dashboard", "driver.hook": "after_commit_draft"}
    assert hook.status.code == trace_pb2.Status.STATUS_CODE_UNSET
    # One tree: every span of the caller's trace descends from the call's server span.
    spans = found.trace(call.trace_id)
    ids = {span.span_id for span in spans}
    assert [span for span in spans if span.parent_span_id not in ids] == [call]


@pytest.mark.postgres
def test_each_contention_retry_shows_on_the_call_with_its_attempt(
    receiver, postgres_admin, tmp_path
):
    found, env = receiver
    url = _postgres_test_url(postgres_admin, lock_timeout=100)
    alice = bearer("user:alice")
    with _report_service(tmp_path, url, env) as service:
        with service.channel() as channel:
            stub = report_service_pb2_grpc.ReportServiceStub(channel)
            create_changed_draft(stub, alice, REPORT_ID)
            with report_row_locked(REPORT_ID), pytest.raises(grpc.RpcError) as caught:
                _commit(stub, alice)
            assert caught.value.code() == grpc.StatusCode.ABORTED
            call = found.server_span(f"{REPORTS}/CommitReportDraft")
        assert service.stop() == 0

    retries = [attributes(event) for event in call.events if event.name == "transaction retry"]
    assert [(retry["attempt"], retry["error.type"]) for retry in retries] == [
        (attempt, "LockNotAvailable") for attempt in range(1, ATTEMPTS)
    ]
    transactions = found.children(call)
    assert [attributes(span)["transaction.outcome"] for span in transactions] == [
        "rollback"
    ] * ATTEMPTS
    for transaction in transactions:
        # The statement that met the lock, marked on its own span.
        failed = [
            span
            for span in found.children(transaction)
            if span.status.code == trace_pb2.Status.STATUS_CODE_ERROR
        ]
        assert len(failed) == 1
        assert "LockNotAvailable" in failed[0].events[0].name + str(attributes(failed[0].events[0]))
    # Each retry event falls between the failed attempt's transaction and the next one's.
    for event, (before, after) in zip(
        (event for event in call.events if event.name == "transaction retry"),
        itertools.pairwise(transactions),
        strict=True,
    ):
        assert before.end_time_unix_nano <= event.time_unix_nano <= after.start_time_unix_nano


# ---------------------------------------------------------------------------
# Stopping
# ---------------------------------------------------------------------------


def test_a_stop_with_the_collector_down_ends_well_within_the_grace_period(sqlite_url, tmp_path):
    grace = 8.0
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",  # nothing listens
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        # An exporter that would retry for half a minute, and spans that wait to be sent.
        "OTEL_EXPORTER_OTLP_TIMEOUT": "30",
        "OTEL_BSP_SCHEDULE_DELAY": "60000",
    }
    alice = bearer("user:alice", ("cohort:read",))
    with service_process(
        "cohort-service", sqlite_url, tmp_path / "s.log", grace_period=grace, env=env
    ) as service:
        with service.channel() as channel:
            stub = draft_service_pb2_grpc.CohortDraftServiceStub(channel)
            stub.ListCohortDrafts(draft_service_pb2.ListCohortDraftsRequest(), metadata=alice)
        signalled = time.monotonic()
        assert service.stop(timeout=60) == 0
        stopped = time.monotonic() - signalled
        log = service.log()
    assert stopped < grace, f"stopped {stopped:.1f}s after SIGTERM"
    assert f"spans not exported within {SPAN_FLUSH_SECONDS:.1f}s" in log


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


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


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]
)
def test_an_otlp_protocol_other_than_grpc_is_a_clear_error(variable):
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    with pytest.raises(ConfigError, match=f"{variable} must be grpc"):
        tracing_enabled({**endpoint, variable: "http/protobuf"})
    assert tracing_enabled({**endpoint, variable: "grpc"}) is True
    assert tracing_enabled({variable: "http/protobuf"}) is False  # off: nothing to check
