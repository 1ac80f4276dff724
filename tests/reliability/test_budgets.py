"""Every RPC, with maximal inputs on maximal data, answers within the response budget, and a
real service process's peak memory stays within a bound (shared.budget).

The RPCs come from the service descriptors: one without a case in budgets.py fails
`test_every_rpc_has_a_maximal_case`. Each call's peak memory is the process's high-water
mark (VmHWM), reset just before the call (/proc/PID/clear_refs), less its RSS before: it must
stay within a small multiple of the call's request and response bytes (GetReport joining a
1 MB defn to 1,000 datasets read ~1 GB for a 1 MB answer).

Long run: BUDGET_ROUNDS=20 BUDGET_ENTRIES=1000 BUDGET_DATABASES=sqlite,postgres
.venv/bin/python -m pytest -s -p no:cacheprovider tests/reliability/test_budgets.py
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import grpc
import pytest

from report_service.rebase import DIFF_VALUES_MAX_BYTES
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
# A call's peak RSS over its RSS before it: a few copies of its request and response (the
# wire bytes, the message, the rows, the JSON), and allocator and grpc slack.
PEAK_FACTOR = 8
PEAK_SLACK_BYTES = 16 * 1024 * 1024


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


def _status_bytes(pid: int, key: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith(f"{key}:"))
    return int(line.split()[1]) * 1024


def _reset_peak(pid: int) -> int:
    """Reset the process's VmHWM to its RSS now (Linux 4.0+); return that RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _status_bytes(pid, "VmRSS")


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
    peaks: dict[str, tuple[int, int]] = defaultdict(lambda: (-1, 1))  # worst (growth, bound)
    with (
        service_process(name, _url(database, tmp_path, request), tmp_path / "service.log") as run,
        run.channel() as channel,
    ):
        session = Session(channel, bearer(), ENTRIES)
        SETUP[service](session)
        rss_before = run.rss_bytes()
        for _ in range(ROUNDS):
            for rpc, cases in CASES[service].items():
                for case in cases:
                    outgoing = case(session)
                    before = _reset_peak(run.pid)
                    try:
                        response = session.call(service, rpc, outgoing)
                        codes[rpc].add("OK")
                        size = response.ByteSize()
                    except grpc.RpcError as error:
                        codes[rpc].add(error.code().name)
                        size = 0
                    growth = _status_bytes(run.pid, "VmHWM") - before
                    bound = PEAK_FACTOR * (outgoing.ByteSize() + size) + PEAK_SLACK_BYTES
                    largest[rpc] = max(largest[rpc], size)
                    peaks[rpc] = max(peaks[rpc], (growth, bound), key=lambda p: p[0] / p[1])
        rss_after = run.rss_bytes()
        assert run.stop() == 0

    print(f"\n{name} on {database}, {ROUNDS} round(s), {ENTRIES} catalog entries of each kind:")
    for rpc in CASES[service]:
        growth, bound = peaks[rpc]
        print(
            f"  {rpc:26} largest response {largest[rpc]:>9,} bytes; peak RSS growth "
            f"{growth / 2**20:5.1f} MiB (bound {bound / 2**20:5.1f})  {sorted(codes[rpc])}"
        )
    print(f"  RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB")
    assert all(code in ("OK", "INVALID_ARGUMENT") for found in codes.values() for code in found)
    for rpc, size in largest.items():
        limit = PAGE_MAX_BYTES if rpc.startswith("List") else RESOURCE_MAX_BYTES
        if rpc == "DiffReportDraft":  # two reports, and the change values' own budget
            limit = 2 * (RESOURCE_MAX_BYTES + RESOURCE_OVERHEAD_BYTES) + DIFF_VALUES_MAX_BYTES
        if rpc == "WatchReport":  # the SNAPSHOT carries the original and the caller's draft
            limit = 2 * RESOURCE_MAX_BYTES + RESOURCE_OVERHEAD_BYTES
        assert size <= limit + RESOURCE_OVERHEAD_BYTES, (rpc, size)
    over = {rpc: peak for rpc, peak in peaks.items() if peak[0] > peak[1]}
    assert not over, f"calls whose peak RSS growth (bytes) passed its bound: {over}"
