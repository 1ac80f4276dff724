"""The `health` command: one grpc.health.v1 Check, for probes that cannot speak gRPC themselves.

Docker's HEALTHCHECK and a Kubernetes exec probe only run a command and read its exit status;
Kubernetes' own `grpc:` probe needs none of this. The answer is the server's, as it says it:
NOT_SERVING while it drains (shared/drain.py), NOT_FOUND for a service it does not serve.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclass(frozen=True)
class ProbeResult:
    """What one Check found: healthy only when the server said SERVING."""

    healthy: bool
    line: str  # one line for the operator, naming the address and what was found


def check_health(address: str, service: str = "", timeout: float = 3.0) -> ProbeResult:
    """Ask the server at address (HOST:PORT) whether it serves `service` ("" = the server)."""
    target = f"{address} ({service})" if service else address
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as error:
            return ProbeResult(False, f"{target}: {_describe(error, service, timeout)}")
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return ProbeResult(response.status == SERVING, f"{target}: {status}")


def _describe(error: grpc.RpcError, service: str, timeout: float) -> str:
    code = error.code()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer within {timeout:g}s (DEADLINE_EXCEEDED)"
    if code == grpc.StatusCode.NOT_FOUND:
        return f"the server does not serve {service!r} (NOT_FOUND)"
    # UNAVAILABLE: nothing listens, or the connection failed; the library's words say which.
    details = (error.details() or "").strip().splitlines()
    return f"{details[0] if details else 'no details'} ({code.name})"
