"""Public-key configurations (RS256, ES256): valid tokens pass, forged ones are UNAUTHENTICATED.

Covers the classic algorithm-confusion attack: an HS256 token whose HMAC secret is the
public key text, which a verifier that lets the token pick its algorithm would accept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.config import AuthSettings, ConfigError
from tests.reliability.rpc import DEFINITIONS, methods_of
from tests.reliability.test_authorization_matrix import _expect
from tests.reliability.worlds import OWNER, SETUP, valid_request
from tests.support import ALL_PERMISSIONS, serve

_PRIVATE_KEYS = {
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
}
_OTHER_ALGORITHM = {"RS256": "ES256", "ES256": "RS256"}


def _public_pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _claims(**changes) -> dict:
    now = int(time.time())
    return {"sub": OWNER, "permissions": list(ALL_PERMISSIONS), "exp": now + 600, **changes}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_with_secret(claims: dict, secret: bytes) -> str:
    """Signed by hand: PyJWT itself refuses to use a PEM public key as an HMAC secret."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def _metadata(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


@pytest.fixture(scope="module", params=sorted(_PRIVATE_KEYS))
def keys(request):
    """(algorithm, the configured key pair's private key, a private key of the other kind)."""
    algorithm = request.param
    return algorithm, _PRIVATE_KEYS[algorithm](), _PRIVATE_KEYS[_OTHER_ALGORITHM[algorithm]]()


def _forged_tokens(algorithm: str, private_key, other_kind_key) -> dict[str, str]:
    impostor = _PRIVATE_KEYS[algorithm]()
    public_pem = _public_pem(private_key)
    return {
        "signed by another key": jwt.encode(_claims(), impostor, algorithm=algorithm),
        "HS256 with the public key as secret": _hs256_with_secret(_claims(), public_pem.encode()),
        "alg none": jwt.encode(_claims(), None, algorithm="none"),
        "other key type": jwt.encode(
            _claims(), other_kind_key, algorithm=_OTHER_ALGORITHM[algorithm]
        ),
        "expired": jwt.encode(_claims(exp=int(time.time()) - 60), private_key, algorithm=algorithm),
    }


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_public_key_tokens_pass_and_forged_ones_are_unauthenticated_on_every_method(
    keys, service, sqlite_url
):
    algorithm, private_key, other_kind_key = keys
    auth = AuthSettings(public_key=_public_pem(private_key))
    valid = _metadata(jwt.encode(_claims(), private_key, algorithm=algorithm))
    forged = _forged_tokens(algorithm, private_key, other_kind_key)
    with serve(DEFINITIONS[service], sqlite_url, auth=auth) as server:
        # Setting up the owner's data calls the write RPCs with the valid token: they pass.
        world = SETUP[service](server.channel, valid, "pk")
        for method in methods_of(DEFINITIONS[service]):
            request = valid_request(service, method.name, world)
            for label, token in forged.items():
                assert _expect(
                    server, method, request, _metadata(token), grpc.StatusCode.UNAUTHENTICATED
                ), label


def test_a_public_key_file_that_is_not_a_key_is_refused_at_start_naming_the_variable(sqlite_url):
    garbage = "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n"
    with (
        pytest.raises(ConfigError, match="AUTH_JWT_PUBLIC_KEY_FILE"),
        serve(DEFINITIONS["report"], sqlite_url, auth=AuthSettings(public_key=garbage)),
    ):
        pass
