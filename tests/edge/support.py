"""Helpers of the edge tests: a draft-edge process in front of real services, and HTTP calls."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from cohort_service.server import SERVICE as COHORT
from report_service.server import SERVICE as REPORT
from report_service.v1 import report_pb2, report_service_pb2_grpc
from shared.auth import mint_token
from tests.processes import ServiceProcess, start_module
from tests.support import ALL_PERMISSIONS, TEST_AUTH, bare_server, serve

BROWSER_ORIGIN = "http://app.example.test:3000"  # the origin the shared edge lets call
SLOW_SECONDS = 1.5


@dataclass
class Edge:
    """A running draft-edge: its process and where it listens."""

    process: ServiceProcess
    address: str  # HOST:PORT, for gRPC channels

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


class TakesStubFlags:
    """Mixed into sonora's gRPC-Web channels: takes the flag today's generated stubs pass
    (which sonora predates) so that those stubs call through them."""

    def unary_unary(self, path, request_serializer, response_deserializer, **_):
        return super().unary_unary(path, request_serializer, response_deserializer)  # type: ignore[misc]

    def unary_stream(self, path, request_serializer, response_deserializer, **_):
        return super().unary_stream(path, request_serializer, response_deserializer)  # type: ignore[misc]


def token(sub: str = "user:john.doe", permissions: tuple[str, ...] = ALL_PERMISSIONS) -> str:
    return mint_token(TEST_AUTH, sub, list(permissions), ttl_seconds=600)


def auth(sub: str = "user:john.doe", permissions: tuple[str, ...] = ALL_PERMISSIONS) -> dict:
    """The headers of a REST call by sub."""
    return {"authorization": f"Bearer {token(sub, permissions)}"}


def start_edge(
    cohort: str,
    report: str,
    log_path: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
) -> Edge:
    """`python -m draft_edge serve` on port 0 in front of cohort and report (HOST:PORT lists),
    ready once it says where it listens."""
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EDGE_")},
        "EDGE_PORT": "0",
        "EDGE_COHORT": cohort,
        "EDGE_REPORT": report,
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    process = start_module("draft-edge", "draft_edge", ("serve", *args), environment, log_path)
    return Edge(process, process.address)


@contextlib.contextmanager
def edge_process(cohort: str, report: str, log_path: Path, *args: str, **kw) -> Iterator[Edge]:
    """An edge for the block; SIGKILLed at its end if the block did not stop it."""
    edge = start_edge(cohort, report, log_path, *args, **kw)
    try:
        yield edge
    finally:
        edge.process.kill()


class SlowReports(report_service_pb2_grpc.ReportServiceServicer):
    """A report-service stand-in whose GetReport takes SLOW_SECONDS: a call in flight."""

    def __init__(self) -> None:
        self.started = threading.Event()

    def GetReport(self, request, context):
        self.started.set()
        time.sleep(SLOW_SECONDS)
        return report_pb2.Report(id=request.id)

    @classmethod
    @contextlib.contextmanager
    def serving(cls) -> Iterator[tuple[SlowReports, str]]:
        """One on port 0 for the block, and its address."""
        servicer = cls()
        add = report_service_pb2_grpc.add_ReportServiceServicer_to_server
        with bare_server(add, servicer) as address:
            yield servicer, address


@contextlib.contextmanager
def services_in_process(folder: Path) -> Iterator[tuple[str, str]]:
    """Both services on port 0 in this process (SQLite files in folder): their addresses."""
    with (
        serve(COHORT, f"sqlite:///{folder / 'cohort.db'}") as cohort,
        serve(REPORT, f"sqlite:///{folder / 'report.db'}") as report,
    ):
        yield cohort.address, report.address
