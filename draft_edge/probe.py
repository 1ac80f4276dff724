"""The `health` command: one GET of the edge's /ready, for probes that can only run a command.

Docker's HEALTHCHECK (the image has no curl) and compose's healthcheck run it; Kubernetes'
`httpGet` probe asks the port itself. http.client suffices for one local request, as in
draft_edge.admin.
"""

from __future__ import annotations

import http.client

from draft_edge.config import READY_PATH
from shared.probe import ProbeResult


def check_ready(address: str, timeout: float = 3.0) -> ProbeResult:
    """Ask the edge whose health listener is at address (HOST:PORT) whether it is ready."""
    host, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
    try:
        connection.request("GET", READY_PATH)
        response = connection.getresponse()
    except TimeoutError:
        return ProbeResult(False, f"{address}: no answer within {timeout:g}s")
    except (OSError, http.client.HTTPException) as exc:
        return ProbeResult(False, f"{address}: {exc}")
    finally:
        connection.close()
    # 503 once the edge drains (draft_edge.admin), or before Envoy is ready.
    return ProbeResult(response.status == 200, f"{address}: {response.status} {response.reason}")
