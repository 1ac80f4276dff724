"""Fixtures of the report-service tests: a real server per test and clients of three principals."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from report_service.server import SERVICE
from tests.report_service.support import Client, write_driver
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
        module = write_driver(tmp_path, source, attribute)
        monkeypatch.syspath_prepend(str(tmp_path))
        try:
            with serve(SERVICE, url or database_url, **overrides) as running:
                yield running
        finally:
            sys.modules.pop(module, None)

    return install
