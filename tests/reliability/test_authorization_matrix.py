"""Every RPC of both services x every kind of bad or insufficient credential → the exact code.

Methods come from the service descriptors, so a new RPC is in the matrix as soon as it exists;
it must also be classified in tests/reliability/worlds.py (owner-scoped or not), or
test_every_method_is_classified fails. Each case also proves that nothing changed in the store.
"""

from __future__ import annotations

import time
import uuid

import grpc
import jwt
import pytest

from tests.reliability.rpc import DEFINITIONS, access_rule, all_methods, invoke, methods_of
from tests.reliability.servers import AUTH
from tests.reliability.worlds import (
    NOT_OWNER_SCOPED,
    OTHER,
    OWNER,
    OWNER_SCOPED,
    SETUP,
    valid_request,
)
from tests.support import ALL_PERMISSIONS, TEST_SECRET, RunningService, bearer, snapshot

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


def _signed(claims: dict, key: str = TEST_SECRET, algorithm: str = "HS256") -> list:
    return [("authorization", f"Bearer {jwt.encode(claims, key, algorithm=algorithm)}")]


def _claims(**changes) -> dict:
    now = int(time.time())
    claims = {
        "sub": OWNER,
        "permissions": list(ALL_PERMISSIONS),
        "aud": AUTH.audience,
        "iss": AUTH.issuer,
        "iat": now,
        "exp": now + 600,
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


# Each builds the owner's call metadata; all of them must be refused with UNAUTHENTICATED.
BAD_CREDENTIALS = {
    "no token": lambda: [],
    "not bearer": lambda: [("authorization", "Basic dXNlcjpwYXNz")],
    "malformed token": lambda: [("authorization", "Bearer not.a.jwt")],
    "bad signature": lambda: _signed(_claims(), key="another-secret-" + "y" * 32),
    "alg none": lambda: [("authorization", f"Bearer {jwt.encode(_claims(), None, 'none')}")],
    "expired": lambda: _signed(_claims(exp=int(time.time()) - 60)),
    "not yet valid": lambda: _signed(_claims(nbf=int(time.time()) + 600)),
    "no exp": lambda: _signed(_claims(exp=None)),
    "wrong audience": lambda: _signed(_claims(aud="someone-else")),
    "wrong issuer": lambda: _signed(_claims(iss="https://evil.test")),
}


def _expect(server: RunningService, method, request, metadata, code: grpc.StatusCode):
    """Call; assert the exact code and an unchanged store. Returns the error, if any."""
    before = snapshot(server.database)
    try:
        invoke(server.channel, method, request, metadata)
        got, error = grpc.StatusCode.OK, None
    except grpc.RpcError as caught:
        got, error = caught.code(), caught
    assert got == code, (method.full_name, error.details() if error else "")
    assert snapshot(server.database) == before, f"{method.full_name} changed the store"
    return error


# ---------------------------------------------------------------------------
# The matrix
# ---------------------------------------------------------------------------

METHODS = list(all_methods())
CREDENTIAL_CASES = [
    pytest.param(service, method, case, id=f"{method.name}-{case}")
    for service, method in METHODS
    for case in BAD_CREDENTIALS
]
PERMISSION_CASES = [pytest.param(s, m, id=m.name) for s, m in METHODS]
OWNER_CASES = [
    pytest.param(service, method_name, index, id=f"{method_name}-{index}")
    for service, table in sorted(OWNER_SCOPED.items())
    for method_name, builders in table.items()
    for index in range(len(builders))
]


@pytest.mark.parametrize(("service", "method", "case"), CREDENTIAL_CASES)
def test_bad_credentials_are_unauthenticated_and_change_nothing(servers, service, method, case):
    server, world = servers.get(service)
    request = valid_request(service, method.name, world)
    _expect(server, method, request, BAD_CREDENTIALS[case](), UNAUTHENTICATED)


@pytest.mark.parametrize(("service", "method"), PERMISSION_CASES)
def test_a_token_without_the_permission_is_denied_naming_it(servers, service, method):
    server, world = servers.get(service)
    request = valid_request(service, method.name, world)
    rule = access_rule(method)
    metadata = bearer(OWNER, ["unrelated:permission"], auth=AUTH)
    if rule.authenticated:
        # Any valid token may call it: it answers as it would the owner (all such RPCs read).
        expected = OWNER_SCOPED[service][method.name][0][1]
        _expect(server, method, request, metadata, expected)
        return
    error = _expect(server, method, request, metadata, grpc.StatusCode.PERMISSION_DENIED)
    assert rule.permission in error.details()


@pytest.mark.parametrize(("service", "method_name", "index"), OWNER_CASES)
def test_another_principals_draft_is_not_found_and_unchanged(servers, service, method_name, index):
    server, world = servers.get(service)
    method = next(m for m in methods_of(DEFINITIONS[service]) if m.name == method_name)
    build, _ = OWNER_SCOPED[service][method_name][index]
    _expect(server, method, build(world), bearer(OTHER, auth=AUTH), grpc.StatusCode.NOT_FOUND)


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_lists_show_nothing_of_another_principal(servers, service):
    server, world = servers.get(service)
    for method in methods_of(DEFINITIONS[service]):
        if not method.name.startswith("List") or method.name in OWNER_SCOPED[service]:
            continue
        request = NOT_OWNER_SCOPED[service][method.name](world)
        reply = invoke(server.channel, method, request, bearer(OTHER, auth=AUTH))
        assert world.ids["draft"] not in str(reply), method.name


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_every_method_is_classified_as_owner_scoped_or_not(service):
    names = {method.name for method in methods_of(DEFINITIONS[service])}
    owned, not_owned = set(OWNER_SCOPED[service]), set(NOT_OWNER_SCOPED[service])
    assert not owned & not_owned, f"classified twice: {sorted(owned & not_owned)}"
    assert names == owned | not_owned, (
        f"unclassified: {sorted(names - owned - not_owned)}; "
        f"stale: {sorted((owned | not_owned) - names)} — add each RPC to OWNER_SCOPED or "
        "NOT_OWNER_SCOPED in tests/reliability/worlds.py"
    )


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_every_method_declares_an_access_rule(service):
    for method in methods_of(DEFINITIONS[service]):
        rule = access_rule(method)
        assert rule.WhichOneof("requirement"), f"{method.full_name} has no (shared.v1.auth)"
        assert rule.permission or rule.authenticated, f"{method.full_name} has an empty rule"


# ---------------------------------------------------------------------------
# Controls: the requests of the matrix are ones the owner may make
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_the_owner_gets_the_expected_answer_to_every_matrix_request(servers, service):
    """Without this, NOT_FOUND for the other principal could come from a wrong request."""
    server, _ = servers.get(service)
    owner = bearer(OWNER, auth=AUTH)
    try:
        for method in methods_of(DEFINITIONS[service]):
            builders = OWNER_SCOPED[service].get(method.name) or (
                (NOT_OWNER_SCOPED[service][method.name], grpc.StatusCode.OK),
            )
            for build, expected in builders:
                world = SETUP[service](server.channel, owner, uuid.uuid4().hex[:8])
                got, details = grpc.StatusCode.OK, ""
                try:
                    invoke(server.channel, method, build(world), owner)
                except grpc.RpcError as error:
                    got, details = error.code(), error.details()
                assert got == expected, (method.name, details)
    finally:
        servers.close()  # this test writes: the next one starts from a fresh store


def test_health_needs_no_token(servers):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    server, _ = servers.get("report")
    reply = health_pb2_grpc.HealthStub(server.channel).Check(
        health_pb2.HealthCheckRequest(service=DEFINITIONS["report"].service_names[0]), timeout=5
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
