"""Fixtures of the edge tests: one Envoy and one pair of services for the whole package, each
test working on ids and principals of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.edge.support import BROWSER_ORIGIN, Edge, edge_process, services_in_process


@pytest.fixture(scope="package")
def services(tmp_path_factory) -> Iterator[tuple[str, str]]:
    with services_in_process(tmp_path_factory.mktemp("edge-services")) as addresses:
        yield addresses


@pytest.fixture(scope="package")
def edge(services, tmp_path_factory) -> Iterator[Edge]:
    cohort, report = services
    log = tmp_path_factory.mktemp("edge") / "edge.log"
    with edge_process(cohort, report, log, "--cors-origins", BROWSER_ORIGIN) as running:
        yield running
