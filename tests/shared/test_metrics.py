"""--metrics-port: a real service process, a known sequence of calls, /metrics scraped over HTTP."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
import uuid

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection  # noqa: F401 (registers its protos)
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from cohort_service.v1 import draft_service_pb2, draft_service_pb2_grpc
from report_service.server import SERVICE as REPORT
from shared.lanes import TOO_MANY_STREAMS, Limits
from shared.metrics import recording
from tests.processes import ServiceProcess, _children, free_port, service_process
from tests.reliability.streams import held
from tests.reliability.test_operator_cli import busy_port, cli
from tests.reliability.test_streams import REFLECTION_V1ALPHA as REFLECTION
from tests.reliability.test_streams import serving
from tests.support import bearer

DRAFTS = "cohort_service.v1.CohortDraftService"
Patch = draft_service_pb2.PatchCohortDraftRequest


def scrape(service: ServiceProcess) -> dict[tuple[str, frozenset], float]:
    """Every sample of the service's /metrics, by name and labels."""
    line = next(line for line in service._stdout_lines if line.startswith("metrics on "))
    address = line.removeprefix("metrics on ").strip()
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def reflection_method():
    return descriptor_pool.Default().FindServiceByName(REFLECTION).methods[0]


def rpc(method: str, **labels: str) -> frozenset:
    return frozenset(
        {"grpc_service": DRAFTS, "grpc_method": method, "grpc_type": "unary", **labels}.items()
    )


def make_known_calls(channel: grpc.Channel) -> None:
    """2 x PatchCohortDraft OK (the second a replay), Get INVALID_ARGUMENT, List
    UNAUTHENTICATED and OK, and a health Check."""
    stub = draft_service_pb2_grpc.CohortDraftServiceStub(channel)
    alice = bearer(f"user:metrics-{uuid.uuid4().hex[:8]}", ("cohort:read", "cohort:write"))
    request = Patch(name="Q1", idempotency_key=f"key-{uuid.uuid4()}")
    first = stub.PatchCohortDraft(request, metadata=alice)
    assert stub.PatchCohortDraft(request, metadata=alice) == first
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetCohortDraft(draft_service_pb2.GetCohortDraftRequest(draft_id="42"), metadata=alice)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListCohortDrafts(draft_service_pb2.ListCohortDraftsRequest())
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    stub.ListCohortDrafts(draft_service_pb2.ListCohortDraftsRequest(), metadata=alice)
    health = health_pb2_grpc.HealthStub(channel)
    assert (
        health.Check(health_pb2.HealthCheckRequest()).status
        == health_pb2.HealthCheckResponse.SERVING
    )


def assert_counts_of_known_calls(samples: dict, times: int, *, live: bool = True) -> None:
    """What make_known_calls, made `times` times, leaves in /metrics (live: and the gauges)."""
    expected = {
        ("grpc_server_started_total", rpc("PatchCohortDraft")): 2 * times,
        ("grpc_server_handled_total", rpc("PatchCohortDraft", grpc_code="OK")): 2 * times,
        ("grpc_server_handling_seconds_count", rpc("PatchCohortDraft")): 2 * times,
        ("grpc_server_started_total", rpc("GetCohortDraft")): times,
        ("grpc_server_handled_total", rpc("GetCohortDraft", grpc_code="INVALID_ARGUMENT")): times,
        ("grpc_server_handled_total", rpc("ListCohortDrafts", grpc_code="UNAUTHENTICATED")): times,
        ("grpc_server_handled_total", rpc("ListCohortDrafts", grpc_code="OK")): times,
        (
            "grpc_server_handled_total",
            frozenset(
                {
                    "grpc_service": "grpc.health.v1.Health",
                    "grpc_method": "Check",
                    "grpc_type": "unary",
                    "grpc_code": "OK",
                }.items()
            ),
        ): times,
        ("idempotency_replays_total", frozenset()): times,
        ("db_transaction_retries_total", frozenset()): 0,
        ("db_transaction_contention_aborts_total", frozenset()): 0,
    }
    assert {key: samples.get(key) for key in expected} == expected
    # Only the codes the calls got: no OK recorded for the refused ones.
    handled = {
        key: value for key, value in samples.items() if key[0] == "grpc_server_handled_total"
    }
    assert sum(handled.values()) == 6 * times
    if live:
        in_flight = [v for (name, _), v in samples.items() if name == "grpc_server_in_flight"]
        assert in_flight == [0] * 4  # one series per method called
        assert samples[("grpc_server_lane_in_use", frozenset({"lane": "calls"}.items()))] == 0


def test_metrics_count_each_call_by_method_and_the_code_the_client_got(database_url, tmp_path):
    with service_process(
        "cohort-service", database_url, tmp_path / "service.log", args=("--metrics-port", "0")
    ) as service:
        with service.channel() as channel:
            make_known_calls(channel)
        samples = scrape(service)
        assert service.stop() == 0
    assert_counts_of_known_calls(samples, times=1)
    if database_url.startswith("postgresql"):
        assert samples[("db_pool_connections_in_use", frozenset())] == 0
        assert samples[("db_pool_waits_total", frozenset())] == 0


def test_metrics_of_every_worker_add_up_on_the_parents_endpoint(sqlite_url, tmp_path):
    with service_process(
        "cohort-service",
        sqlite_url,
        tmp_path / "service.log",
        port=free_port(),
        workers=2,
        args=("--metrics-port", "0"),
    ) as service:
        # A connection per round: the kernel spreads connections across the workers.
        for _ in range(6):
            with service.channel() as channel:
                make_known_calls(channel)
        samples = scrape(service)
        assert service.stop() == 0
    assert_counts_of_known_calls(samples, times=6)


def test_a_refused_stream_is_counted_as_a_refusal_and_handled_with_its_code(sqlite_url):
    registry = CollectorRegistry()
    with recording(registry), serving(REPORT, sqlite_url, Limits(streams=1)) as server:
        reflection = reflection_method()
        with held() as calls:
            calls.stream(server.channel, reflection)
            with pytest.raises(grpc.RpcError) as caught:
                calls.stream(server.channel, reflection)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            in_use = registry.get_sample_value("grpc_server_lane_in_use", {"lane": "streams"})
        refusals = registry.get_sample_value(
            "grpc_server_lane_refusals_total", {"lane": "streams", "reason": TOO_MANY_STREAMS}
        )
        refused = registry.get_sample_value(
            "grpc_server_handled_total",
            {
                "grpc_service": REFLECTION,
                "grpc_method": "ServerReflectionInfo",
                "grpc_type": "bidi_stream",
                "grpc_code": "RESOURCE_EXHAUSTED",
            },
        )
    assert (in_use, refusals, refused) == (1, 1, 1)


def test_a_watch_whose_client_left_is_handled_cancelled(sqlite_url):
    registry = CollectorRegistry()
    watch_handled = {
        "grpc_service": "grpc.health.v1.Health",
        "grpc_method": "Watch",
        "grpc_type": "server_stream",
    }
    with recording(registry), serving(REPORT, sqlite_url) as server:
        watch = health_pb2_grpc.HealthStub(server.channel).Watch(health_pb2.HealthCheckRequest())
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
        deadline = time.monotonic() + 10
        while registry.get_sample_value("grpc_server_in_flight", watch_handled) != 0:
            assert time.monotonic() < deadline, "the stream never ended on the server"
            time.sleep(0.05)
    cancelled = registry.get_sample_value(
        "grpc_server_handled_total", {**watch_handled, "grpc_code": "CANCELLED"}
    )
    assert cancelled == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_a_busy_metrics_port_is_one_line_naming_the_flag_and_variable(workers, tmp_path):
    with busy_port() as metrics_port:
        result = cli(
            "cohort-service", "serve", cwd=tmp_path,
            COHORT_PORT=str(free_port()), COHORT_WORKERS=str(workers),
            COHORT_METRICS_PORT=str(metrics_port),
        )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"cohort-service: error: cannot serve metrics on 127.0.0.1:{metrics_port}: "
    ), last
    assert last.endswith("--metrics-port or COHORT_METRICS_PORT (0 picks a free port)"), last


def test_a_worker_that_dies_stops_counting_in_the_gauges_and_keeps_its_counts(sqlite_url, tmp_path):
    with (
        service_process(
            "cohort-service",
            sqlite_url,
            tmp_path / "service.log",
            port=free_port(),
            workers=2,
            args=("--metrics-port", "0"),
        ) as service,
        service.channel() as channel,
        held() as calls,
    ):
        make_known_calls(channel)
        calls.stream(channel, reflection_method())
        streams_in_use = ("grpc_server_lane_in_use", frozenset({"lane": "streams"}.items()))
        assert scrape(service)[streams_in_use] == 1
        for worker in _children(service.pid):
            os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 30
        # Marked dead, the workers' gauges are gone; their counters stay.
        while (samples := scrape(service)).get(streams_in_use, 0) != 0:
            assert time.monotonic() < deadline, samples.get(streams_in_use)
            time.sleep(0.1)
    assert_counts_of_known_calls(samples, times=1, live=False)


def test_watch_streams_are_counted_open_delivered_and_ended_by_reason(sqlite_url):
    from tests.report_service.support import Client
    from tests.report_service.watchers import Watcher

    registry = CollectorRegistry()
    sample = registry.get_sample_value
    with (
        recording(registry),
        serving(REPORT, sqlite_url, Limits(watches_per_principal=1)) as server,
    ):
        alice = Client.of(server, "user:alice")
        alice.create()
        watcher = Watcher(server.channel, alice.metadata, "team:sales-dashboard")
        watcher.next()
        refused = Watcher(server.channel, alice.metadata, "team:sales-dashboard").ending()
        assert refused is not None and refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert sample("watch_streams_open") == 1
        alice.call("DeleteReport", id="team:sales-dashboard")
        watcher.next()  # REPORT_DELETED, after which the stream ends with OK
        assert watcher.ending() is None
        deadline = time.monotonic() + 10
        while sample("watch_streams_open") != 0:
            assert time.monotonic() < deadline, "the stream never ended on the server"
            time.sleep(0.05)
        assert sample("watch_events_delivered_total") == 2  # SNAPSHOT, REPORT_DELETED
        assert sample("watch_streams_ended_total", {"reason": "ENDED"}) == 1
        assert (
            sample(
                "grpc_server_lane_refusals_total", {"lane": "watches", "reason": "TOO_MANY_WATCHES"}
            )
            == 1
        )
