"""Envoy's admin interface, spoken over its Unix socket.

The standard library's HTTP client connects to TCP only, so the socket is opened here; the
rest is http.client's. (No HTTP library is a runtime dependency of the edge for these few
local calls.)
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

TIMEOUT_SECONDS = 5.0


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT_SECONDS)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Admin:
    """Calls to one Envoy's admin interface; each raises OSError if Envoy does not answer."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    def request(self, method: str, path: str) -> tuple[int, str]:
        connection = _UnixConnection(self.socket_path)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, response.read().decode()
        except http.client.HTTPException as exc:  # a reply cut short: Envoy is going away
            raise OSError(f"envoy admin {path}: {exc}") from exc
        finally:
            connection.close()

    def ready(self) -> bool:
        """True once Envoy has initialised its listeners and clusters (server state LIVE)."""
        try:
            status, _ = self.request("GET", "/ready")
        except OSError:
            return False
        return status == 200

    def listener_ports(self) -> dict[str, int]:
        """Listener name -> the port it is bound to (the one the kernel chose for port 0)."""
        _, body = self.request("GET", "/listeners?format=json")
        found = {}
        for status in json.loads(body).get("listener_statuses", []):
            address: dict[str, Any] = status["local_address"]["socket_address"]
            found[status["name"]] = int(address["port_value"])
        return found

    def counter(self, name: str) -> int:
        """The value of one statistic (a counter or gauge), 0 if Envoy has none by that name."""
        _, body = self.request("GET", f"/stats?format=json&filter=^{name}$")
        for stat in json.loads(body).get("stats", []):
            if stat.get("name") == name:
                return int(stat.get("value", 0))
        return 0

    def drain(self) -> None:
        """Stop taking new connections gracefully: GOAWAY to HTTP/2 clients, `connection:
        close` to HTTP/1.1 ones, then the listeners close (Envoy's --drain-time-s). First the
        health check fails, so that probes (GET /ready) see 503 from the drain's start."""
        self.request("POST", "/healthcheck/fail")
        self.request("POST", "/drain_listeners?graceful")

    def quit(self) -> None:
        self.request("POST", "/quitquitquit")
