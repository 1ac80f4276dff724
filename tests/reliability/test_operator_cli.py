"""What an operator sees when the start-up goes wrong: one line, the cause, and what to change.

Each test runs the production CLI (or scripts/run) in processes of its own, as an operator does.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import grpc
import httpx
import pytest

from cohort_service.v1 import catalog_service_pb2, catalog_service_pb2_grpc
from report_service.v1 import report_service_pb2, report_service_pb2_grpc
from tests.conftest import _postgres_test_url
from tests.processes import ENV_PREFIXES, MODULES, REPO_ROOT, free_port, service_process
from tests.support import TEST_SECRET


@contextmanager
def busy_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def environment(**variables: str) -> dict[str, str]:
    """The test process's environment without any service setting, plus variables."""
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COHORT_", "REPORT_", "EDGE_", "AUTH_"))
    }
    # scripts/run starts the edge too: on a port of its own, never the shared default 8080.
    return {**kept, "AUTH_JWT_SECRET": TEST_SECRET, "EDGE_PORT": "0", **variables}


def cli(service: str, *args: str, cwd: Path, **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", MODULES[service], *args],
        cwd=cwd, env=environment(**variables), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(("service", "workers"), [("cohort-service", 1), ("report-service", 2)])
def test_a_busy_port_is_one_line_naming_the_address_and_the_variable(service, workers, tmp_path):
    prefix = ENV_PREFIXES[service]
    with busy_port() as port:
        result = cli(
            service, "serve", cwd=tmp_path,
            **{f"{prefix}_PORT": str(port), f"{prefix}_WORKERS": str(workers)},
        )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{service}: error: cannot listen on 127.0.0.1:{port}: "), last
    assert f"{prefix}_PORT" in last and "--port" in last


def test_migrate_and_seed_name_the_sqlite_file_they_use_and_say_when_it_is_new(tmp_path):
    # The default URL is relative: from another directory it means another file.
    first = cli("cohort-service", "migrate", cwd=tmp_path)
    path = tmp_path / "var" / "cohort-service.db"
    assert first.returncode == 0, first.stderr
    assert f"cohort-service: database SQLite file {path} (new: created now)\n" in first.stdout
    catalog = REPO_ROOT / "examples" / "catalog.json"
    again = cli("cohort-service", "seed", str(catalog), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"cohort-service: database SQLite file {path}\n" in again.stdout


@pytest.mark.postgres
def test_migrate_names_the_postgresql_database_without_its_password(postgres_admin, tmp_path):
    database_url = _postgres_test_url(postgres_admin)
    parsed = urlparse(database_url)
    with_password = parsed._replace(
        netloc=f"{parsed.username}:hunter2@{parsed.hostname}:{parsed.port}"
    ).geturl()
    result = cli("report-service", "migrate", "--database-url", with_password, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    expected = f"postgresql://{parsed.username}@{parsed.hostname}:{parsed.port}{parsed.path}"
    assert f"report-service: database PostgreSQL {expected}" in result.stdout


def test_serve_names_its_database_before_it_listens(tmp_path):
    url = f"sqlite:///{tmp_path / 'cohort.db'}"
    with service_process("cohort-service", url, tmp_path / "log") as running:
        pass
    assert running._stdout_lines[0] == (
        f"cohort-service: database SQLite file {tmp_path / 'cohort.db'} (new: created now)\n"
    )


def test_scripts_run_stops_the_other_service_when_one_cannot_start(tmp_path):
    with busy_port() as port:
        result = subprocess.run(
            [str(REPO_ROOT / "scripts" / "run")],
            env=environment(
                COHORT_PORT=str(port),
                REPORT_PORT=str(free_port()),  # a fixed one: the edge is told it
                COHORT_DATABASE_URL=f"sqlite:///{tmp_path / 'cohort.db'}",
                REPORT_DATABASE_URL=f"sqlite:///{tmp_path / 'report.db'}",
            ),
            capture_output=True, text=True, timeout=90,  # it used to wait forever
        )  # fmt: skip
    assert result.returncode != 0
    assert f"cohort-service: error: cannot listen on 127.0.0.1:{port}" in result.stderr
    # scripts/run waits for both services before it exits, so the report-service is gone;
    # if it got as far as listening, its port no longer answers.
    for line in result.stdout.splitlines():
        if line.startswith("listening on "):
            host, report_port = line.removeprefix("listening on ").rsplit(":", 1)
            with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
                probe.connect((host, int(report_port)))


def _dev_env(path: Path) -> dict[str, str]:
    """The variables a shell gets from `. var/dev.env`."""
    shell = f"set -a; . {shlex.quote(str(path))}; env -0"
    dumped = subprocess.run(["bash", "-c", shell], env={}, capture_output=True, check=True)
    return dict(item.split("=", 1) for item in dumped.stdout.decode().split("\0") if item)


def test_scripts_run_writes_a_dev_env_whose_tokens_and_secret_the_services_accept(tmp_path):
    dev_env = tmp_path / "dev.env"
    cohort_port, report_port, edge_port = free_port(), free_port(), free_port()
    variables = environment(
        COHORT_PORT=str(cohort_port),
        REPORT_PORT=str(report_port),
        EDGE_PORT=str(edge_port),
        COHORT_DATABASE_URL=f"sqlite:///{tmp_path / 'cohort.db'}",
        REPORT_DATABASE_URL=f"sqlite:///{tmp_path / 'report.db'}",
        DEV_ENV_FILE=str(dev_env),
    )
    del variables["AUTH_JWT_SECRET"]  # as a user runs it: scripts/run makes one up
    run = subprocess.Popen(
        [str(REPO_ROOT / "scripts" / "run")], env=variables, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        listening = 0
        for line in run.stdout:  # the file is written before any process starts
            listening += line.startswith("listening on ")
            if listening == 3:
                break
        assert listening == 3, "scripts/run stopped before both services and the edge listened"
        written = _dev_env(dev_env)
        assert written["COHORT"] == f"http://127.0.0.1:{cohort_port}"
        assert written["REPORT"] == f"http://127.0.0.1:{report_port}"
        assert written["EDGE"] == f"http://127.0.0.1:{edge_port}"
        assert written["AUTH_JWT_SECRET"] != TEST_SECRET
        # A second user's token, minted as the README says, from the secret in the file.
        second = cli(
            "report-service", "token", "--sub", "user:ann", cwd=tmp_path,
            AUTH_JWT_SECRET=written["AUTH_JWT_SECRET"],
        )  # fmt: skip
        assert second.returncode == 0, second.stderr
        with grpc.insecure_channel(f"127.0.0.1:{report_port}") as channel:
            reports = report_service_pb2_grpc.ReportServiceStub(channel)
            for token in (written["T"], second.stdout.strip()):
                reports.ListReports(
                    report_service_pb2.ListReportsRequest(), timeout=30,
                    metadata=(("authorization", f"Bearer {token}"),),
                )  # fmt: skip
        with grpc.insecure_channel(f"127.0.0.1:{cohort_port}") as channel:
            catalog = catalog_service_pb2_grpc.CohortCatalogServiceStub(channel)
            catalog.ListDepartments(
                catalog_service_pb2.ListDepartmentsRequest(), timeout=30,
                metadata=(("authorization", f"Bearer {written['C']}"),),
            )  # fmt: skip
        # The edge, at the URL in the file, in front of both (REST/JSON at the seeds' paths).
        for path, token in (("/api/reports", written["T"]), ("/cohort/drafts", written["C"])):
            listed = httpx.get(
                written["EDGE"] + path, headers={"authorization": f"Bearer {token}"}, timeout=30
            )
            assert listed.status_code == 200, listed.text
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)
        run.stdout.close()
