"""The services the edge serves, read from the descriptor set Envoy transcodes with.

scripts/gen_protos.py writes api.binpb beside this module from protos/; every RPC it holds, with
its google.api.http rule, is routed by the edge, so a new RPC needs no change here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

DESCRIPTOR_SET = Path(__file__).with_name("api.binpb")
# The services' proto packages start with the name of the deployable that serves them.
UPSTREAM_OF_PACKAGE = {"cohort_service": "cohort", "report_service": "report"}


@dataclass(frozen=True)
class HttpBinding:
    """One REST mapping of an RPC: `POST /api/reports/{id}/_edit` with body `*`."""

    verb: str  # GET, PUT, POST, DELETE, PATCH
    template: str
    body: str


@dataclass(frozen=True)
class Rpc:
    """One method of a served service."""

    service: str  # full name, report_service.v1.ReportService
    method: str  # EditReport
    upstream: str  # which deployable serves it: a key of UPSTREAM_OF_PACKAGE's values
    input_type: str  # full name of the request message, without the leading dot
    http: tuple[HttpBinding, ...]
    server_streaming: bool

    @property
    def path(self) -> str:
        """The gRPC path, which Envoy routes on (transcoded requests included)."""
        return f"/{self.service}/{self.method}"


@functools.cache
def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())


@functools.cache
def rpcs() -> tuple[Rpc, ...]:
    """Every RPC of the services' own packages, in the descriptor set's order."""
    found = []
    for file in descriptor_set().file:
        upstream = UPSTREAM_OF_PACKAGE.get(file.package.split(".")[0])
        if upstream is None:  # google.*: imported types, no service of ours
            continue
        for service in file.service:
            for method in service.method:
                found.append(
                    Rpc(
                        service=f"{file.package}.{service.name}",
                        method=method.name,
                        upstream=upstream,
                        input_type=method.input_type.lstrip("."),
                        http=_bindings(method.options.Extensions[annotations_pb2.http]),
                        server_streaming=method.server_streaming,
                    )
                )
    return tuple(found)


def services() -> dict[str, str]:
    """Full service name -> the upstream serving it."""
    return {rpc.service: rpc.upstream for rpc in rpcs()}


def _bindings(rule: http_pb2.HttpRule) -> tuple[HttpBinding, ...]:
    found = []
    for one in (rule, *rule.additional_bindings):
        pattern = one.WhichOneof("pattern")
        if pattern is None:
            continue
        if pattern == "custom":
            found.append(HttpBinding(one.custom.kind.upper(), one.custom.path, one.body))
        else:
            found.append(HttpBinding(pattern.upper(), getattr(one, pattern), one.body))
    return tuple(found)
