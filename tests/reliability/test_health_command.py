"""`<service> health --address HOST:PORT`: the probe for what cannot speak gRPC (Docker's
HEALTHCHECK, an exec probe). Exit 0 only when the server says SERVING; otherwise one line.

The servers are real (port 0, production bootstrap); the command runs in a process of its own,
as the probe runs it.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from cohort_service.server import SERVICE as COHORT
from report_service.server import SERVICE as REPORT
from shared.server import run_server
from tests import support
from tests.processes import MODULES, free_port

DEFINITIONS = {definition.name: definition for definition in (COHORT, REPORT)}


def health(service: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", MODULES[service], "health", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(params=sorted(DEFINITIONS))
def running(request, sqlite_url):
    definition = DEFINITIONS[request.param]
    with run_server(definition, support.test_settings(definition, sqlite_url)) as server:
        yield server, definition


def test_health_exits_0_when_the_server_and_each_of_its_services_are_serving(running):
    server, definition = running
    address = f"127.0.0.1:{server.port}"
    for service in ("", *definition.service_names):
        args = ("--address", address) + (("--service", service) if service else ())
        result = health(definition.name, *args)
        assert result.returncode == 0, result.stderr
        assert one_line(result.stdout).endswith(": SERVING"), result.stdout
        assert result.stderr == ""


def test_health_exits_1_with_one_line_once_the_server_drains(running):
    server, definition = running
    # The drain's first step (shared/drain.py): probes read NOT_SERVING while calls finish.
    server.health.enter_graceful_shutdown()
    result = health(definition.name, "--address", f"127.0.0.1:{server.port}")
    assert result.returncode == 1
    assert one_line(result.stderr) == f"{definition.name}: 127.0.0.1:{server.port}: NOT_SERVING"
    assert result.stdout == ""


def test_health_names_a_service_the_server_does_not_serve(running):
    server, definition = running
    address = f"127.0.0.1:{server.port}"
    result = health(definition.name, "--address", address, "--service", "no.such.Service")
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith(f"{definition.name}: {address} (no.such.Service): "), line
    assert "NOT_FOUND" in line


def test_health_exits_1_with_one_line_when_nothing_listens():
    address = f"127.0.0.1:{free_port()}"
    result = health("report-service", "--address", address)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith(f"report-service: {address}: "), line
    assert line.endswith("(UNAVAILABLE)"), line


def test_health_gives_up_after_its_timeout_when_the_peer_never_answers():
    # A socket that accepts connections but never speaks HTTP/2: a hung process looks so.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        result = health("cohort-service", "--address", address, "--timeout", "0.5")
    assert result.returncode == 1
    assert one_line(result.stderr) == (
        f"cohort-service: {address}: no answer within 0.5s (DEADLINE_EXCEEDED)"
    )


@pytest.mark.parametrize("timeout", ["0", "-1", "soon", "inf"])
def test_health_refuses_a_timeout_that_is_not_a_positive_number(timeout):
    result = health("report-service", "--address", "127.0.0.1:1", "--timeout", timeout)
    assert result.returncode == 2
    assert "--timeout: must be a positive number of seconds" in result.stderr
