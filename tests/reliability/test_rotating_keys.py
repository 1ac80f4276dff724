"""Keys that rotate (AUTH_JWKS_URL) and clock skew (AUTH_JWT_LEEWAY), against a real service.

The key set is served over plain HTTP by a server on 127.0.0.1 that each test starts (the
code fetches https:// the same way, through urllib; http:// is allowed to loopback only),
or read from a file:// URL.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from report_service.server import SERVICE
from report_service.v1 import report_service_pb2, report_service_pb2_grpc
from shared.auth import mint_token
from shared.config import AuthSettings, ConfigError, load_auth
from shared.jwks import MAX_JWKS_BYTES
from tests.processes import service_process
from tests.support import ALL_PERMISSIONS, TEST_SECRET, failure, serve, watch_log

_NEW_KEY = {
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
}


class _Key:
    """A private key, its kid, and its public half as a JWK."""

    def __init__(self, algorithm: str = "ES256") -> None:
        self.algorithm = algorithm
        self.kid = f"{algorithm}-{uuid.uuid4().hex[:8]}"
        self.private = _NEW_KEY[algorithm]()

    @property
    def jwk(self) -> dict:
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        jwk = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig"}

    def token(self, expires_in: int = 600, **header) -> str:
        claims = {
            "sub": "user:alice",
            "permissions": list(ALL_PERMISSIONS),
            "exp": int(time.time()) + expires_in,
        }
        header = {"alg": self.algorithm, "typ": "JWT", "kid": self.kid, **header}
        # Signed by hand: PyJWT's encode refuses a kid that is not a string.
        signing_input = f"{_b64(json.dumps(header))}.{_b64(json.dumps(claims))}".encode()
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        signature = algorithm.sign(signing_input, self.private)
        return f"{signing_input.decode()}.{_b64(signature)}"


def _b64(data: str | bytes) -> str:
    data = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _JwksServer:
    """Serves `document` (JSON, or raw bytes) at /jwks.json; counts the requests.

    With `hang` set, a request gets no answer until the server stops; with `tls` (a
    certificate and key file) it speaks HTTPS.
    """

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.document: dict | bytes = {"keys": []}
        self.requests = 0
        self.hang = False
        self._released = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                if owner.hang:
                    owner._released.wait(60)
                body = owner.document
                body = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._http.socket = context.wrap_socket(self._http.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self._http.server_port}/jwks.json"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def publish(self, *keys: _Key) -> None:
        self.document = {"keys": [key.jwk for key in keys]}

    def stop(self) -> None:
        """Down: the port refuses connections from now on."""
        self._released.set()
        if self._thread.is_alive():
            self._http.shutdown()
            self._thread.join()
        self._http.server_close()


@contextlib.contextmanager
def _jwks_server(tls: tuple[Path, Path] | None = None) -> Iterator[_JwksServer]:
    server = _JwksServer(tls)
    try:
        yield server
    finally:
        server.stop()


def _auth(url: str, **changes) -> AuthSettings:
    # retry 0: a new kid is fetched at once (the default, 10 s, would slow the tests).
    return AuthSettings(jwks_url=url, **{"jwks_retry_seconds": 0.0, **changes})


def _list(server, token: str):
    stub = report_service_pb2_grpc.ReportServiceStub(server.channel)
    return stub.ListReports(
        report_service_pb2.ListReportsRequest(), metadata=[("authorization", f"Bearer {token}")]
    )


def _refused(server, token: str):
    with pytest.raises(grpc.RpcError) as caught:
        _list(server, token)
    return failure(caught.value)


# ---------------------------------------------------------------------------
# Rotation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", sorted(_NEW_KEY))
def test_tokens_signed_by_a_published_key_of_each_algorithm_are_accepted(algorithm, sqlite_url):
    key = _Key(algorithm)
    with _jwks_server() as jwks:
        jwks.publish(key)
        with serve(SERVICE, sqlite_url, auth=_auth(jwks.url)) as server:
            _list(server, key.token())


def test_a_key_published_after_start_is_accepted_and_the_key_it_replaced_is_refused(sqlite_url):
    old, new = _Key("RS256"), _Key("ES256")
    with _jwks_server() as jwks:
        jwks.publish(old)
        with serve(SERVICE, sqlite_url, auth=_auth(jwks.url)) as server:
            old_token = old.token()
            _list(server, old_token)  # verified, and remembered as verified
            jwks.publish(new)  # the provider rotates: the old key is withdrawn
            _list(server, new.token())  # unknown kid -> the set is fetched again
            refused = _refused(server, old_token)
    assert refused.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.reason == "UNKNOWN_SIGNING_KEY"
    assert old.kid in refused.message


def test_a_withdrawn_key_is_refused_after_the_periodic_refresh_without_any_unknown_kid(
    sqlite_url,
):
    kept, withdrawn = _Key(), _Key()
    with _jwks_server() as jwks:
        jwks.publish(kept, withdrawn)
        auth = _auth(jwks.url, jwks_refresh_seconds=0.3, jwks_retry_seconds=0.3)
        with serve(SERVICE, sqlite_url, auth=auth) as server:
            token = withdrawn.token()
            _list(server, token)
            jwks.publish(kept)
            # The same token, already verified: only the periodic refresh can withdraw it.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    _list(server, token)
                except grpc.RpcError as error:
                    assert failure(error).reason == "UNKNOWN_SIGNING_KEY"
                    break
                time.sleep(0.1)
            else:
                pytest.fail("the withdrawn key was still accepted 30 s after its withdrawal")
            _list(server, kept.token())


def test_a_key_set_read_from_a_file_url_rotates_too(sqlite_url, tmp_path):
    old, new = _Key("EdDSA"), _Key("RS256")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [old.jwk]}))
    with serve(SERVICE, sqlite_url, auth=_auth(path.as_uri())) as server:
        _list(server, old.token())
        path.write_text(json.dumps({"keys": [new.jwk]}))
        _list(server, new.token())
        assert _refused(server, old.token()).reason == "UNKNOWN_SIGNING_KEY"


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key: (certificate file, key file)."""
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert_file, key_file = directory / "jwks.crt", directory / "jwks.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_a_key_set_served_over_https_is_used_when_its_certificate_is_trusted(
    sqlite_url, tmp_path, monkeypatch
):
    key = _Key()
    tls = _self_signed_certificate(tmp_path)
    with _jwks_server(tls) as jwks:
        jwks.publish(key)
        # Not trusted: no keys load, and calls are UNAUTHENTICATED (never INTERNAL).
        with (
            watch_log("shared.jwks") as log,
            serve(SERVICE, sqlite_url, auth=_auth(jwks.url)) as server,
        ):
            refused = _refused(server, key.token())
            assert "CERTIFICATE_VERIFY_FAILED" in log.wait_for("cannot load token signing keys")
        assert (refused.reason, refused.message) == (
            "UNKNOWN_SIGNING_KEY",
            "no token signing keys could be loaded yet; retry later",
        )
        # Trusted the way an operator trusts a private CA: OpenSSL's SSL_CERT_FILE.
        monkeypatch.setenv("SSL_CERT_FILE", str(tls[0]))
        with serve(SERVICE, sqlite_url, auth=_auth(jwks.url)) as server:
            _list(server, key.token())


# ---------------------------------------------------------------------------
# An endpoint that is down, slow to change, or hostile
# ---------------------------------------------------------------------------


def test_an_endpoint_that_stops_answering_holds_up_no_call_whose_key_is_known(sqlite_url):
    key, unpublished = _Key(), _Key()
    with _jwks_server() as jwks:
        jwks.publish(key)
        auth = _auth(jwks.url, jwks_refresh_seconds=0.1, jwks_retry_seconds=0.1)
        with serve(SERVICE, sqlite_url, auth=auth) as server:
            _list(server, key.token())
            jwks.hang = True
            time.sleep(0.3)  # stale: the next call starts a refresh that gets no answer
            stub = report_service_pb2_grpc.ReportServiceStub(server.channel)
            for seconds in range(5):
                # A fetch takes up to 5 s to give up; a call with a known kid never waits
                # for it (the 4 s deadline is a loose bound: such a call takes milliseconds).
                token = key.token(expires_in=500 - seconds)
                stub.ListReports(
                    report_service_pb2.ListReportsRequest(),
                    metadata=[("authorization", f"Bearer {token}")],
                    timeout=4,
                )
            # An unknown kid waits for the fetch under way (at most 5 s), then is refused.
            refused = _refused(server, unpublished.token())
    assert refused.reason == "UNKNOWN_SIGNING_KEY"


def test_when_the_endpoint_is_down_cached_keys_work_and_unknown_kids_are_unauthenticated(
    sqlite_url,
):
    key, unpublished = _Key(), _Key()
    with _jwks_server() as jwks:
        jwks.publish(key)
        auth = _auth(jwks.url, jwks_refresh_seconds=0.1, jwks_retry_seconds=0.1)
        with watch_log("shared.jwks") as log, serve(SERVICE, sqlite_url, auth=auth) as server:
            _list(server, key.token())
            jwks.stop()
            time.sleep(0.3)  # the set is stale now: the next call starts a refresh, which fails
            _list(server, key.token(expires_in=500))  # a token never seen: verified afresh
            log.wait_for("cannot load token signing keys", "keeping the 1 loaded before")
            _list(server, key.token(expires_in=400))
            refused = [_refused(server, unpublished.token()) for _ in range(3)]
    assert {(r.code, r.reason) for r in refused} == {
        (grpc.StatusCode.UNAUTHENTICATED, "UNKNOWN_SIGNING_KEY")
    }


def test_a_flood_of_unknown_kids_fetches_the_set_at_most_once_per_retry_period(sqlite_url):
    key = _Key()
    with _jwks_server() as jwks:
        jwks.publish(key)
        auth = _auth(jwks.url, jwks_retry_seconds=600)
        with serve(SERVICE, sqlite_url, auth=auth) as server:
            for _ in range(20):
                forged = key.token(kid=uuid.uuid4().hex)
                assert _refused(server, forged).reason == "UNKNOWN_SIGNING_KEY"
            _list(server, key.token())
    assert jwks.requests == 1  # the fetch at start-up


@pytest.mark.parametrize(
    "document",
    [b"{not json", b'{"keys": []}', b'{"keys": "x"}', b"[]", b" " * (MAX_JWKS_BYTES + 1)],
    ids=["not JSON", "no keys", "keys not a list", "not an object", "too large"],
)
def test_a_key_set_that_turns_bad_keeps_the_keys_loaded_before(document, sqlite_url):
    key, new = _Key(), _Key()
    with _jwks_server() as jwks:
        jwks.publish(key)
        with (
            watch_log("shared.jwks") as log,
            serve(SERVICE, sqlite_url, auth=_auth(jwks.url)) as server,
        ):
            _list(server, key.token())
            jwks.document = document
            assert _refused(server, new.token()).reason == "UNKNOWN_SIGNING_KEY"
            log.wait_for("cannot load token signing keys")
            _list(server, key.token(expires_in=500))


def test_forged_tokens_naming_a_published_kid_are_unauthenticated(sqlite_url):
    key = _Key("RS256")
    hmac_secret = b"published-by-mistake-" + b"k" * 32
    hmac_jwk = json.loads(jwt.get_algorithm_by_name("HS256").to_jwk(hmac_secret))
    impostor = _Key("RS256")
    impostor.kid = key.kid
    forged = {
        "signed by another key with the same kid": impostor.token(),
        "HS256 signed with an oct key of the set": jwt.encode(
            {"sub": "user:mallory", "exp": int(time.time()) + 600, "permissions": []},
            hmac_secret,
            algorithm="HS256",
            headers={"kid": "oct"},
        ),
        "alg none": jwt.encode(
            {"sub": "user:mallory", "exp": int(time.time()) + 600, "permissions": []},
            None,
            algorithm="none",
            headers={"kid": key.kid},
        ),
        "no kid": jwt.encode(
            {"sub": "user:mallory", "exp": int(time.time()) + 600, "permissions": []},
            key.private,
            algorithm="RS256",
        ),
        "kid not a string": key.token(kid=5),
        "kid of 5000 characters": key.token(kid="k" * 5000),
    }
    with _jwks_server() as jwks:
        jwks.document = {"keys": [key.jwk, {**hmac_jwk, "kid": "oct"}]}
        with serve(SERVICE, sqlite_url, auth=_auth(jwks.url)) as server:
            _list(server, key.token())
            for label, token in forged.items():
                refused = _refused(server, token)
                assert refused.code == grpc.StatusCode.UNAUTHENTICATED, label
                assert len(refused.message) < 300, label


# ---------------------------------------------------------------------------
# Clock skew
# ---------------------------------------------------------------------------


def _hs256(expires_in: int) -> str:
    return mint_token(
        AuthSettings(secret=TEST_SECRET), "user:alice", ALL_PERMISSIONS, ttl_seconds=expires_in
    )


@pytest.mark.parametrize("keys", ["HS256 secret", "ES256 PEM", "EdDSA JWKS"])
def test_a_token_expired_10_s_ago_passes_the_default_leeway_and_one_expired_60_s_ago_does_not(
    keys, sqlite_url
):
    key = _Key("EdDSA" if keys == "EdDSA JWKS" else "ES256")
    with _jwks_server() as jwks:
        jwks.publish(key)
        auth = {
            "HS256 secret": AuthSettings(secret=TEST_SECRET),
            "ES256 PEM": AuthSettings(
                public_key=key.private.public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                .decode()
            ),
            "EdDSA JWKS": _auth(jwks.url),
        }[keys]
        token = _hs256 if keys == "HS256 secret" else lambda seconds: key.token(seconds)
        with serve(SERVICE, sqlite_url, auth=auth) as server:
            _list(server, token(-10))
            refused = _refused(server, token(-60))
    assert refused.reason == "TOKEN_EXPIRED"


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "environ",
    [
        {"AUTH_JWKS_URL": "http://idp.example.com/jwks.json"},
        {"AUTH_JWKS_URL": "ftp://idp.example.com/jwks.json"},
        {"AUTH_JWKS_URL": "https:///jwks.json"},
        {"AUTH_JWKS_URL": "jwks.json"},
        {"AUTH_JWT_LEEWAY": "thirty"},
        {"AUTH_JWT_LEEWAY": "-1"},
        {"AUTH_JWT_LEEWAY": "86400"},
    ],
    ids=lambda environ: "=".join(next(iter(environ.items()))),
)
def test_a_bad_jwks_url_or_leeway_is_refused_naming_the_variable(environ):
    with pytest.raises(ConfigError, match=next(iter(environ))):
        load_auth(environ)


def test_the_jwks_url_and_the_public_key_file_together_are_refused(tmp_path):
    pem = tmp_path / "key.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\n")
    environ = {
        "AUTH_JWKS_URL": "https://idp.example.com/jwks",
        "AUTH_JWT_PUBLIC_KEY_FILE": str(pem),
    }
    with pytest.raises(ConfigError, match="AUTH_JWKS_URL and AUTH_JWT_PUBLIC_KEY_FILE"):
        load_auth(environ)


def test_jwks_url_and_leeway_are_read_from_the_environment():
    auth = load_auth({"AUTH_JWKS_URL": "http://127.0.0.1:8080/jwks", "AUTH_JWT_LEEWAY": "5"})
    assert (auth.jwks_url, auth.leeway, auth.configured) == ("http://127.0.0.1:8080/jwks", 5, True)
    assert load_auth({}).leeway == 30


def test_a_service_process_takes_its_key_set_and_leeway_from_the_environment(tmp_path):
    key = _Key("EdDSA")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [key.jwk]}))
    environment = {
        "AUTH_JWT_SECRET": "",  # keys from the set only
        "AUTH_JWKS_URL": jwks.as_uri(),
        "AUTH_JWT_LEEWAY": "0",
    }
    url = f"sqlite:///{tmp_path / 'service.db'}"
    with service_process("report-service", url, tmp_path / "log", env=environment) as running:
        with running.channel() as channel:
            stub = report_service_pb2_grpc.ReportServiceStub(channel)

            def call(token: str):
                metadata = [("authorization", f"Bearer {token}")]
                request = report_service_pb2.ListReportsRequest()
                return stub.ListReports(request, metadata=metadata, timeout=30)

            call(key.token(600))
            with pytest.raises(grpc.RpcError) as caught:
                call(key.token(-10))  # within the default leeway, but the process has 0
        assert failure(caught.value).reason == "TOKEN_EXPIRED"
        assert running.stop() == 0
