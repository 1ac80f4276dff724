"""Values a client or a token signer controls that answered INTERNAL: one test per finding.

NaN/±Infinity in a Struct (json_format refuses them), a deadline past PostgreSQL's int32
statement_timeout, validly signed tokens with odd claims, and two authorization headers.
"""

from __future__ import annotations

import math
import time

import grpc
import jwt
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from report_service.v1 import report_pb2, report_service_pb2
from shared import cli
from tests.reliability.rpc import DEFINITIONS, invoke, methods_of
from tests.reliability.servers import AUTH
from tests.reliability.worlds import OWNER, OWNER_SCOPED, valid_request
from tests.support import ALL_PERMISSIONS, bearer, failure, snapshot

_F = FieldDescriptor
NON_FINITE = (math.nan, math.inf, -math.inf)


def _method(service: str, name: str):
    return next(m for m in methods_of(DEFINITIONS[service]) if m.name == name)


def _refused(server, method, request, metadata=None, timeout=30):
    metadata = bearer(OWNER, auth=AUTH) if metadata is None else metadata
    before = snapshot(server.database)
    with pytest.raises(grpc.RpcError) as caught:
        invoke(server.channel, method, request, metadata, timeout=timeout)
    assert snapshot(server.database) == before
    return failure(caught.value)


# ---------------------------------------------------------------------------
# NaN and ±Infinity: every Struct, Value and floating-point field of every request
# ---------------------------------------------------------------------------


def number_paths(descriptor: Descriptor, prefix: str = "", depth: int = 0) -> list[str]:
    """Paths of the singular fields where a request can carry a number a client chose.

    A Struct or Value field (the number goes inside it), or a double/float field; found
    from the descriptors, so that a new field is covered without an edit here.
    """
    paths = []
    for field in descriptor.fields:
        path = f"{prefix}{field.name}"
        if field.is_repeated or depth > 4:
            continue
        if field.type in (_F.TYPE_DOUBLE, _F.TYPE_FLOAT):
            paths.append(path)
        elif field.type == _F.TYPE_MESSAGE:
            name = field.message_type.full_name
            if name in ("google.protobuf.Struct", "google.protobuf.Value"):
                paths.append(path)
            elif not name.startswith("google.protobuf."):
                paths += number_paths(field.message_type, f"{path}.", depth + 1)
    return paths


def _set_number(request, path: str, number: float) -> str:
    """Put number at path (inside the Struct or Value there); the field path the server names."""
    *parents, name = path.split(".")
    holder = request
    for part in parents:
        holder = getattr(holder, part)
    field = holder.DESCRIPTOR.fields_by_name[name]
    if field.type != _F.TYPE_MESSAGE:
        setattr(holder, name, number)
        return path
    target = getattr(holder, name)
    if field.message_type.full_name == "google.protobuf.Value":
        target.list_value.values.add().number_value = number
        return f"{path}.list_value.values[0].number_value"
    target.fields["n"].number_value = number
    return f"{path}.fields['n'].number_value"


def _requests(service: str, world) -> list:
    requests = []
    for method in methods_of(DEFINITIONS[service]):
        builders = OWNER_SCOPED[service].get(method.name)
        built = (
            [b(world) for b, _ in builders]
            if builders
            else [valid_request(service, method.name, world)]
        )
        requests += [(method, request) for request in built]
    return requests


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_nan_and_infinity_in_every_number_field_are_invalid_argument_naming_it(servers, service):
    server, world = servers.get(service)
    tried = 0
    for method, valid in _requests(service, world):
        for path in number_paths(method.input_type):
            for number in NON_FINITE:
                request = type(valid)()
                request.CopyFrom(valid)
                named = _set_number(request, path, number)
                found = _refused(server, method, request)
                assert (found.code, found.reason, found.fields) == (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "NON_FINITE_NUMBER",
                    [named],
                ), (method.name, path, number, found.message)
                tried += 1
    if service == "report":  # the walker finds the Structs: defn and settings, everywhere
        create = _method("report", "CreateReport").input_type
        assert number_paths(create) == ["report.defn", "report.settings"]
        assert tried >= 3 * 7, tried


def test_a_non_finite_number_deep_in_a_struct_is_named_with_a_nul_beside_it(servers):
    server, world = servers.get("report")
    request = report_service_pb2.UpdateUserReportSettingsRequest(report_id=world.ids["original"])
    request.settings.update({"a": {"b": [1, {"c": 2}]}, "t": "x\x00"})
    request.settings["a"]["b"][1]["c"] = math.inf
    found = _refused(server, _method("report", "UpdateUserReportSettings"), request)
    assert found.code == grpc.StatusCode.INVALID_ARGUMENT
    assert sorted(found.fields) == [
        "settings.fields['a'].struct_value.fields['b'].list_value.values[1]"
        ".struct_value.fields['c'].number_value",
        "settings.fields['t'].string_value",
    ]


# ---------------------------------------------------------------------------
# Deadlines: PostgreSQL's statement_timeout is an int32 of milliseconds (~24.8 days)
# ---------------------------------------------------------------------------

DAY = 86_400.0


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
@pytest.mark.parametrize("days", [24, 25, 400, 5000], ids=lambda d: f"{d}-days")
def test_a_deadline_of_days_or_years_is_served_on_every_method(servers, service, days):
    server, world = servers.get(service)
    owner = bearer(OWNER, auth=AUTH)
    for method in methods_of(DEFINITIONS[service]):
        if method.name.startswith(("Delete", "Discard", "Commit")):
            continue  # they consume the world; one write per kind is enough here
        request = valid_request(service, method.name, world)
        try:
            invoke(server.channel, method, request, owner, timeout=days * DAY)
        except grpc.RpcError as error:
            found = failure(error)
            # The valid request may be refused for what it asks (FAILED_PRECONDITION), never
            # for its deadline.
            assert found.code in (
                grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.ALREADY_EXISTS,
            ), (method.name, found.code, found.message)


# ---------------------------------------------------------------------------
# Validly signed tokens with odd claims
# ---------------------------------------------------------------------------


_ABSENT = object()  # a claim value that removes the claim


def signed(claims: dict) -> list[tuple[str, str]]:
    """Metadata with a token signed by the service's key: only its claims are odd."""
    now = int(time.time())
    payload = {
        "sub": OWNER,
        "permissions": list(ALL_PERMISSIONS),
        "exp": now + 600,
        "iat": now,
        "aud": AUTH.audience,
        "iss": AUTH.issuer,
        **claims,
    }
    payload = {name: value for name, value in payload.items() if value is not _ABSENT}
    return [("authorization", f"Bearer {jwt.encode(payload, AUTH.secret, algorithm='HS256')}")]


ODD_CLAIMS = {
    "exp of 400 digits": {"exp": 10**400},
    "exp as text": {"exp": str(int(time.time()) + 600)},
    "exp past year 9999": {"exp": 253_402_300_800},
    "exp a huge float": {"exp": 1e300},
    "exp infinite": {"exp": math.inf},
    "exp NaN": {"exp": math.nan},
    "exp a list": {"exp": [1]},
    "exp true": {"exp": True},
    "nbf of 400 digits": {"nbf": 10**400},
    "nbf as text": {"nbf": "0"},
    "iat negative": {"iat": -(10**400)},
    "iat an object": {"iat": {"a": 1}},
    "sub with NUL": {"sub": "user:a\x00b"},
    "sub of 5,000 characters": {"sub": "user:" + "a" * 4995},
    "sub of 256 characters": {"sub": "user:" + "a" * 251},
    "sub with a newline": {"sub": "user:a\nrpc method=x"},
    "sub with a space": {"sub": "user:john doe"},
    "sub with a lone surrogate": {"sub": "user:\ud800"},
    "sub with a right-to-left override": {"sub": "user:\u202eecila"},
    "sub a number": {"sub": 5},
    "sub a list": {"sub": ["user:alice"]},
    "sub empty": {"sub": ""},
    "permissions an object": {"permissions": {"report:read": True}},
    "permissions a string": {"permissions": "report:read"},
    "permissions nested": {"permissions": [list(ALL_PERMISSIONS)]},
    "scope a list": {"permissions": _ABSENT, "scope": list(ALL_PERMISSIONS)},
}


@pytest.mark.parametrize("case", ODD_CLAIMS)
def test_validly_signed_tokens_with_odd_claims_are_unauthenticated(servers, case):
    server, _ = servers.get("report")
    request = report_service_pb2.CreateReportRequest(
        report=report_pb2.Report(id=f"team:odd-{abs(hash(case))}", type="table", name="Odd")
    )
    found = _refused(server, _method("report", "CreateReport"), request, signed(ODD_CLAIMS[case]))
    assert found.code == grpc.StatusCode.UNAUTHENTICATED, (case, found.code, found.message)
    assert found.domain == DEFINITIONS["report"].name


@pytest.mark.parametrize(
    "sub",
    ["user:" + "a" * 250, "user:josé.müller", "team:販売"],
)
def test_principals_within_the_grammar_write_and_read_their_drafts(servers, sub):
    server, world = servers.get("report")
    metadata = signed({"sub": sub})
    edit = invoke(
        server.channel,
        _method("report", "EditReport"),
        report_service_pb2.EditReportRequest(id=world.ids["original"]),
        metadata,
    )
    got = invoke(
        server.channel,
        _method("report", "GetReportDraft"),
        report_service_pb2.GetReportDraftRequest(id=world.ids["original"]),
        metadata,
    )
    assert got.id == edit.id
    invoke(
        server.channel,
        _method("report", "DiscardReportDraft"),
        report_service_pb2.DiscardReportDraftRequest(id=world.ids["original"]),
        metadata,
    )


def test_two_authorization_headers_are_unauthenticated_whatever_their_order(servers):
    server, world = servers.get("report")
    owner, other = bearer(OWNER, auth=AUTH), bearer("user:mallory", auth=AUTH)
    for metadata in (owner + other, other + owner, owner + owner):
        found = _refused(
            server,
            _method("report", "GetReport"),
            report_service_pb2.GetReportRequest(id=world.ids["original"]),
            metadata,
        )
        assert (found.code, found.reason) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "MALFORMED_CREDENTIALS",
        )


@pytest.mark.parametrize("sub", ["john doe", "user:a\tb", "user:" + "a" * 251])
def test_the_token_command_refuses_to_mint_a_principal_outside_the_grammar(
    monkeypatch, capsys, sub
):
    monkeypatch.setenv("AUTH_JWT_SECRET", AUTH.secret)
    with pytest.raises(SystemExit) as exited:
        cli.main(DEFINITIONS["report"], ["token", "--sub", sub])
    assert exited.value.code == 2
    assert "--sub" in capsys.readouterr().err
