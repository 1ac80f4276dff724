"""Every RPC of both services refuses every kind of bad credential and changes nothing."""

from __future__ import annotations

import time

import grpc
import jwt
import pytest
from google.protobuf import descriptor_pool, message_factory

from cohort_service.server import SERVICE as COHORT
from report_service.server import SERVICE as REPORT
from shared.config import AuthSettings
from shared.v1 import auth_pb2
from tests.support import TEST_SECRET, bearer, serve, snapshot

DEFINITIONS = {"cohort": COHORT, "report": REPORT}


def methods_of(definition):
    pool = descriptor_pool.Default()
    for name in definition.service_names:
        yield from pool.FindServiceByName(name).methods


def call(channel: grpc.Channel, method, metadata):
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    stub = channel.unary_unary(
        f"/{method.containing_service.full_name}/{method.name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    return stub(request_class(), metadata=metadata, timeout=10)


def raw_token(claims: dict, key: str = TEST_SECRET, algorithm: str = "HS256") -> list:
    return [("authorization", f"Bearer {jwt.encode(claims, key, algorithm=algorithm)}")]


def bad_credentials() -> dict[str, list]:
    now = int(time.time())
    good = {"sub": "user:alice", "permissions": ["report:read"], "exp": now + 600}
    unsigned = jwt.encode(good, None, algorithm="none")
    return {
        "no token": [],
        "not bearer": [("authorization", "Basic dXNlcjpwYXNz")],
        "malformed token": [("authorization", "Bearer not.a.jwt")],
        "bad signature": raw_token(good, key="another-secret-" + "y" * 32),
        "alg none": [("authorization", f"Bearer {unsigned}")],
        "expired": raw_token({**good, "exp": now - 60}),
        "not yet valid": raw_token({**good, "nbf": now + 600}),
        "no exp": raw_token({"sub": "user:alice", "permissions": []}),
    }


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_every_method_declares_an_access_rule(service):
    for method in methods_of(DEFINITIONS[service]):
        rule = method.GetOptions().Extensions[auth_pb2.auth]
        assert rule.WhichOneof("requirement"), f"{method.full_name} has no (shared.v1.auth)"
        assert rule.permission or rule.authenticated, f"{method.full_name} has an empty rule"


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_bad_credentials_are_unauthenticated_on_every_method_and_change_nothing(
    service, database_url
):
    definition = DEFINITIONS[service]
    with serve(definition, database_url) as server:
        before = snapshot(server.database)
        for label, metadata in bad_credentials().items():
            for method in methods_of(definition):
                with pytest.raises(grpc.RpcError) as caught:
                    call(server.channel, method, metadata)
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, (
                    label,
                    method.name,
                )
        assert snapshot(server.database) == before


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_a_token_without_the_permission_is_denied_naming_it(service, sqlite_url):
    definition = DEFINITIONS[service]
    with serve(definition, sqlite_url) as server:
        before = snapshot(server.database)
        for method in methods_of(definition):
            rule = method.GetOptions().Extensions[auth_pb2.auth]
            if not rule.permission:
                continue
            with pytest.raises(grpc.RpcError) as caught:
                call(server.channel, method, bearer("user:alice", ["unrelated:perm"]))
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, method.name
            assert rule.permission in caught.value.details()
        assert snapshot(server.database) == before


@pytest.mark.parametrize("claim", ["audience", "issuer"])
def test_audience_and_issuer_are_checked_when_configured(claim, sqlite_url):
    configured = AuthSettings(secret=TEST_SECRET, **{claim: "drafts"})
    wrong = AuthSettings(secret=TEST_SECRET, **{claim: "someone-else"})
    method = next(m for m in methods_of(REPORT) if m.name == "ListReports")
    with serve(REPORT, sqlite_url, auth=configured) as server:
        call(server.channel, method, bearer(auth=configured))
        with pytest.raises(grpc.RpcError) as caught:
            call(server.channel, method, bearer(auth=wrong))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_and_reflection_need_no_token(sqlite_url):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with serve(REPORT, sqlite_url) as server:
        reply = health_pb2_grpc.HealthStub(server.channel).Check(
            health_pb2.HealthCheckRequest(service=REPORT.service_names[0]), timeout=5
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
