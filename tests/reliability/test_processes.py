"""The production CLI starts a serving process that SIGTERM stops with exit status 0."""

from __future__ import annotations

import signal
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.processes import MODULES, free_port, service_process


@pytest.mark.parametrize("service", sorted(MODULES))
def test_a_service_process_serves_health_and_exits_zero_on_sigterm(service, tmp_path):
    url = f"sqlite:///{tmp_path / 'service.db'}"
    with service_process(service, url, tmp_path / "service.log") as running:
        with running.channel() as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert running.rss_bytes() > 0
        assert running.stop() == 0
    assert "signal received" in running.log()
    with pytest.raises(grpc.RpcError), grpc.insecure_channel(running.address) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)


def test_workers_accept_calls_as_soon_as_listening_is_printed(tmp_path):
    url = f"sqlite:///{tmp_path / 'service.db'}"
    port = free_port()
    with service_process(
        "report-service", url, tmp_path / "service.log", port=port, workers=2
    ) as running:
        # No wait_for_ready: a refused connection fails at once instead of being retried.
        with running.channel() as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert running.stop() == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_a_repeated_sigterm_does_not_turn_a_graceful_exit_into_a_kill(workers, tmp_path):
    url = f"sqlite:///{tmp_path / 'service.db'}"
    port = free_port() if workers > 1 else 0
    with service_process(
        "cohort-service", url, tmp_path / "service.log", port=port, workers=workers
    ) as running:
        # An impatient operator or supervisor: SIGTERM again and again until the process ends.
        while running.process.poll() is None:
            running.process.send_signal(signal.SIGTERM)
            time.sleep(0.005)
        assert running.stop() == 0, running.log()[-2000:]
