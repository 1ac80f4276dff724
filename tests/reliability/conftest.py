"""Fixtures of the reliability tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import _postgres_test_url
from tests.reliability.servers import Servers


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def servers(request, tmp_path_factory) -> Iterator[Servers]:
    if request.param == "sqlite":
        directory = tmp_path_factory.mktemp("matrix")

        def url_for(service: str) -> str:
            return f"sqlite:///{directory / f'{service}.db'}"

    else:
        admin = request.getfixturevalue("postgres_admin")

        def url_for(service: str) -> str:
            return _postgres_test_url(admin)  # a fresh schema for each service in turn

    pool = Servers(url_for)
    yield pool
    pool.close()
