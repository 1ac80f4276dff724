"""Real service processes, started with their production CLI, for tests and harnesses.

In-process servers (tests/support.py `serve`) cover behaviour; what needs a process of its
own — SIGTERM and SIGKILL, several workers, load from other processes, RSS — starts one
here, exactly as an operator would: `python -m <service> serve`, settings from the
environment, readiness from the `listening on HOST:PORT` line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from tests.support import TEST_SECRET

MODULES = {"cohort-service": "cohort_service", "report-service": "report_service"}
ARMED_LAUNCHER = "tests.reliability.armed_service"  # test builds only: see shared/failpoints.py
REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIXES = {"cohort-service": "COHORT", "report-service": "REPORT"}


def free_port() -> int:
    """A port nothing listens on now (for --workers, which needs a fixed port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ServiceProcess:
    """One running service process; stop it with `stop` (SIGTERM) or `kill` (SIGKILL)."""

    service: str
    process: subprocess.Popen
    address: str
    log_path: Path
    _stdout_lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit status (the drain is the service's own)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self._reap(timeout)

    def kill(self) -> int:
        """SIGKILL: no drain, no cleanup — what a crash or an OOM kill does."""
        if self.process.poll() is None:
            self.process.kill()
        return self._reap(30)

    def _reap(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)  # it ends at end of file, once the process is gone
        self.process.stdout.close()
        return code

    def rss_bytes(self) -> int:
        """Resident set size now, from /proc (Linux)."""
        return _rss_bytes(self.pid)

    def tree_rss_bytes(self) -> int:
        """RSS of the process and its children: the --workers processes with their parent."""
        return self.rss_bytes() + sum(_rss_bytes(child) for child in _children(self.pid))

    def cpu_seconds(self) -> float:
        """User + system CPU time the process and its live children (the --workers processes)
        have used so far, from /proc (Linux)."""
        return sum(_cpu_seconds(pid) for pid in (self.pid, *_children(self.pid)))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stdout(self) -> list[str]:
        """The lines the process wrote to stdout so far."""
        return list(self._stdout_lines)


def _rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # a child that has just exited
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def start_service(
    service: str,
    database_url: str,
    log_path: Path,
    *,
    port: int = 0,
    workers: int = 1,
    grace_period: float = 10.0,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    timeout: float = 60.0,
    failpoints: str | None = None,
    failpoint_seed: int = 0,
) -> ServiceProcess:
    """Start `python -m <service> serve` and wait until it says where it listens.

    With failpoints (a spec, see shared/failpoints.py) the test launcher arms them and then
    runs the same production main.
    """
    prefix = ENV_PREFIXES[service]
    environment = {
        **os.environ,
        "AUTH_JWT_SECRET": TEST_SECRET,
        f"{prefix}_DATABASE_URL": database_url,
        f"{prefix}_HOST": "127.0.0.1",
        f"{prefix}_PORT": str(port),
        f"{prefix}_WORKERS": str(workers),
        f"{prefix}_GRACE_PERIOD": str(grace_period),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    if failpoints is None:
        module, argv = MODULES[service], ("serve", *args)
    else:
        module, argv = ARMED_LAUNCHER, (service, "serve", *args)
        environment["DRAFT_FAILPOINTS"] = failpoints
        environment["DRAFT_FAILPOINTS_SEED"] = str(failpoint_seed)
        # The launcher lives in tests/, which is not installed: import it from the checkout.
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO_ROOT), environment.get("PYTHONPATH")])
        )
    return start_module(service, module, argv, environment, log_path, timeout=timeout)


def start_module(
    name: str,
    module: str,
    args: tuple[str, ...],
    environment: Mapping[str, str],
    log_path: Path,
    *,
    timeout: float = 60.0,
) -> ServiceProcess:
    """Start `python -m module args` and wait for its `listening on HOST:PORT` line."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=subprocess.PIPE,
            stderr=log,
            env=dict(environment),
            text=True,
        )
    running = ServiceProcess(name, process, "", log_path)
    running.address = _await_listening(running, timeout)
    return running


def stdout_message(line: str) -> str:
    """A stdout line as the operator reads it: itself, or the message of a JSON log line."""
    if line.startswith("{"):
        with contextlib.suppress(ValueError):
            return str(json.loads(line).get("message", ""))
    return line


def _await_listening(running: ServiceProcess, timeout: float) -> str:
    found: list[str] = []

    def read() -> None:
        for line in running.process.stdout:  # keeps draining so the pipe never fills
            running._stdout_lines.append(line)
            message = stdout_message(line)
            if not found and message.startswith("listening on "):
                found.append(message.removeprefix("listening on ").strip())

    running._reader = threading.Thread(target=read, daemon=True)
    running._reader.start()
    deadline = time.monotonic() + timeout
    while not found:
        if running.process.poll() is not None:
            raise RuntimeError(
                f"{running.service} exited with {running.process.returncode} before listening:"
                f"\n{running.log()}"
            )
        if time.monotonic() > deadline:
            running.kill()
            raise TimeoutError(f"{running.service} did not listen in {timeout}s:\n{running.log()}")
        time.sleep(0.02)
    host, port = found[0].rsplit(":", 1)
    return f"{host}:{port}"


@contextlib.contextmanager
def service_process(
    service: str, database_url: str, log_path: Path, **kw
) -> Iterator[ServiceProcess]:
    """A service process for the block; SIGKILLed at exit if the block did not stop it."""
    running = start_service(service, database_url, log_path, **kw)
    try:
        yield running
    finally:
        running.kill()  # also reaps a process that died by itself, and closes its pipe
