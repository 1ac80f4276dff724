"""Fixtures of the report-service tests: a real server per test and clients of three principals."""

from __future__ import annotations

from collections.abc import Iterator

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
