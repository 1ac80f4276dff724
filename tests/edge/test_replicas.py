"""Two report-service replicas behind the edge: reads keep succeeding while one drains
(SIGTERM) or dies (SIGKILL), and a draining replica gets no new calls."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest

from tests.edge.support import auth, edge_process
from tests.processes import free_port, service_process

LOAD_THREADS = 4
AFTER_SECONDS = 3.0  # load kept up after the signal: past the drain and a health check or two


class ReadLoad:
    """Threads reading one report through the edge as fast as they can, every answer kept."""

    def __init__(self, url: str, path: str) -> None:
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._read, args=(url, path), daemon=True)
            for _ in range(LOAD_THREADS)
        ]

    def _read(self, url: str, path: str) -> None:
        with httpx.Client(base_url=url, headers=auth(), timeout=30) as http:
            while not self._stop.is_set():
                try:
                    answer = http.get(path)
                except httpx.HTTPError as exc:  # the edge itself failing: counted as a failure
                    with self._lock:
                        self.failures.append(repr(exc))
                    continue
                with self._lock:
                    self.statuses[answer.status_code] += 1
                    if answer.status_code != 200:
                        self.failures.append(answer.text)

    def __enter__(self) -> ReadLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def total(self) -> int:
        with self._lock:
            return sum(self.statuses.values())

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.total() < count:
            assert time.monotonic() < deadline, f"only {self.total()} reads in {timeout}s"
            time.sleep(0.05)


def _access_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "rpc method=" in line]


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_reads_keep_succeeding_when_one_of_two_replicas_stops(sqlite_url, tmp_path, stop):
    with (
        service_process("report-service", sqlite_url, tmp_path / "a.log") as first,
        service_process("report-service", sqlite_url, tmp_path / "b.log") as second,
        edge_process(
            f"127.0.0.1:{free_port()}", f"{first.address},{second.address}", tmp_path / "edge.log"
        ) as edge,
    ):
        created = httpx.post(
            f"{edge.url}/api/reports",
            json={"id": "team:replicated", "type": "dashboard", "name": "Replicated"},
            headers=auth(),
            timeout=30,
        )
        assert created.status_code == 200, created.text
        with ReadLoad(edge.url, "/api/reports/team:replicated") as load:
            load.wait_for(200)
            # Both replicas serve before one stops (least-request spreads the reads).
            assert _access_lines(first.log()) and _access_lines(second.log())
            served_before = len(_access_lines(second.log()))
            if stop == "sigterm":
                first.process.send_signal(15)
                assert first.stop() == 0
            else:
                first.kill()
            stopped_at = load.total()
            deadline = time.monotonic() + AFTER_SECONDS
            while time.monotonic() < deadline:
                time.sleep(0.1)
        assert load.failures == []
        assert load.statuses == {200: load.total()}
        assert load.total() > stopped_at + 50  # reads went on, on the other replica
        assert len(_access_lines(second.log())) > served_before
        if stop == "sigterm":
            # From its signal on, the draining replica took no new call: it finished those in
            # flight (one per load thread at most), and refused (UNAVAILABLE) the ones that
            # reached it during its notice, which the edge retried on the other replica.
            log = first.log()
            after = _access_lines(log[log.index("signal received") :])
            finished = [line for line in after if "code=UNAVAILABLE" not in line]
            assert len(finished) <= LOAD_THREADS, finished
            assert all("code=OK" in line for line in finished), finished
