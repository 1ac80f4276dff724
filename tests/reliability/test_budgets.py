"""Every RPC, with maximal inputs on maximal data, answers within the response budget, and a
real service process's peak memory stays within a bound (shared.budget).

The RPCs come from the service descriptors: one without a case in budgets.py fails
`test_every_rpc_has_a_maximal_case`. Peak memory is the process's high-water mark (VmHWM),
read after the set-up and after the measured calls: one call that reads a resource many
times over (GetReport joining a 1 MB defn to 1,000 datasets read ~1 GB) moves it for good.

Long run: BUDGET_ROUNDS=20 BUDGET_ENTRIES=1000 BUDGET_DATABASES=sqlite,postgres
.venv/bin/python -m pytest -s -p no:cacheprovider tests/reliability/test_budgets.py
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import grpc
import pytest

from shared.budget import PAGE_MAX_BYTES, RESOURCE_MAX_BYTES
from tests.conftest import _postgres_test_url
from tests.processes import service_process
from tests.reliability.budgets import CASES, SETUP, Session
from tests.reliability.rpc import DEFINITIONS, all_methods
from tests.support import bearer

ROUNDS = int(os.environ.get("BUDGET_ROUNDS", "1"))
ENTRIES = int(os.environ.get("BUDGET_ENTRIES", "14"))  # 14 wide flags overflow a page
DATABASES = os.environ.get("BUDGET_DATABASES", "sqlite").split(",")
# A resource's message beside its budgeted fields: ids, links, times, owner.
RESOURCE_OVERHEAD_BYTES = 64 * 1024
# Peak RSS growth allowed over the set-up's own peak: one call at a time, each at most
# ~4 MiB of request and ~2 MiB of response, a few copies of each in flight.
PEAK_GROWTH_BYTES = 64 * 1024 * 1024


def test_every_rpc_has_a_maximal_case():
    missing = [
        f"{service}.{method.name}"
        for service, method in all_methods()
        if not CASES[service].get(method.name)
    ]
    extra = [
        f"{service}.{name}"
        for service, cases in CASES.items()
        for name in cases
        if name not in {m.name for s, m in all_methods() if s == service}
    ]
    assert not missing, f"add a maximal case to tests/reliability/budgets.py for {missing}"
    assert not extra, f"cases for RPCs that do not exist: {extra}"


def _peak_rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def _url(database: str, tmp_path: Path, request) -> str:
    if database == "sqlite":
        return f"sqlite:///{tmp_path / 'service.db'}"
    return _postgres_test_url(request.getfixturevalue("postgres_admin"))


_PARAMS = [
    pytest.param(service, database, id=f"{service}-{database}")
    for service in sorted(DEFINITIONS)
    for database in DATABASES
]


@pytest.mark.parametrize(("service", "database"), _PARAMS)
def test_every_rpc_answers_within_the_budget_and_memory_stays_bounded(
    service, database, tmp_path, request
):
    name = DEFINITIONS[service].name
    largest: dict[str, int] = defaultdict(int)
    codes: dict[str, set] = defaultdict(set)
    with (
        service_process(name, _url(database, tmp_path, request), tmp_path / "service.log") as run,
        run.channel() as channel,
    ):
        session = Session(channel, bearer(), ENTRIES)
        SETUP[service](session)
        rss_before, peak_before = run.rss_bytes(), _peak_rss(run.pid)
        for _ in range(ROUNDS):
            for rpc, cases in CASES[service].items():
                for case in cases:
                    outgoing = case(session)
                    try:
                        response = session.call(service, rpc, outgoing)
                    except grpc.RpcError as error:
                        codes[rpc].add(error.code().name)
                        continue
                    codes[rpc].add("OK")
                    largest[rpc] = max(largest[rpc], response.ByteSize())
        rss_after, peak_after = run.rss_bytes(), _peak_rss(run.pid)
        assert run.stop() == 0

    print(f"\n{name} on {database}, {ROUNDS} round(s), {ENTRIES} catalog entries of each kind:")
    for rpc in CASES[service]:
        print(f"  {rpc:26} largest response {largest[rpc]:>9,} bytes  {sorted(codes[rpc])}")
    print(
        f"  RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB; peak (VmHWM) "
        f"{peak_before / 2**20:.1f} -> {peak_after / 2**20:.1f} MiB"
    )
    assert all(code in ("OK", "INVALID_ARGUMENT") for found in codes.values() for code in found)
    for rpc, size in largest.items():
        limit = PAGE_MAX_BYTES if rpc.startswith("List") else RESOURCE_MAX_BYTES
        assert size <= limit + RESOURCE_OVERHEAD_BYTES, (rpc, size)
    assert peak_after - peak_before <= PEAK_GROWTH_BYTES
