"""Fixtures of the report-service tests: a real server per test and clients of three principals."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from report_service.server import SERVICE
from tests.report_service.support import Client
from tests.support import RunningService, serve


@pytest.fixture
def server(database_url) -> Iterator[RunningService]:
    with serve(SERVICE, database_url) as running:
        yield running


@pytest.fixture
def alice(server) -> Client:
    return Client.of(server, "user:alice")


@pytest.fixture
def bob(server) -> Client:
    return Client.of(server, "user:bob")


@pytest.fixture
def john(server) -> Client:
    return Client.of(server, "user:john.doe")


Install = Callable[..., AbstractContextManager[RunningService]]


@pytest.fixture
def serve_with_driver(tmp_path: Path, monkeypatch, database_url) -> Install:
    """Install source as the driver of report type `dashboard`, then serve (on url if given,
    with the settings overrides given)."""

    @contextmanager
    def install(
        source: str, *, attribute: str = "Driver", url: str | None = None, **overrides
    ) -> Iterator[RunningService]:
        module = f"report_driver_{uuid.uuid4().hex}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        dist_info = tmp_path / f"{module}-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n"
        )
        (dist_info / "entry_points.txt").write_text(
            f"[report_service.drivers]\ndashboard = {module}:{attribute}\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        try:
            with serve(SERVICE, url or database_url, **overrides) as running:
                yield running
        finally:
            sys.modules.pop(module, None)

    return install
