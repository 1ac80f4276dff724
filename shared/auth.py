"""Authentication (bearer JWT -> Principal) and authorisation (the method's proto option)."""

from __future__ import annotations

import contextvars
import functools
import math
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.protobuf import descriptor_pool
from jwt import PyJWK

from shared.config import AuthSettings, ConfigError
from shared.errors import PermissionDenied, Unauthenticated
from shared.jwks import SigningKeys
from shared.v1 import auth_pb2

MAX_TOKEN_LENGTH = 8192  # far above any real token; bounds the work a forged header can cause
# Verified tokens remembered until their `exp`: a client sends the same token on every call,
# and decoding it was ~10% of GetReport's Python CPU (py-spy, bench). Bounded, least
# recently used out first; keyed by the whole token, signature included.
VERIFIED_CACHE_SIZE = 1024
MAX_PRINCIPAL_LENGTH = 255  # characters of `sub` (see _subject)
PRINCIPAL_RULE = (
    f"a principal is 1 to {MAX_PRINCIPAL_LENGTH} characters, without spaces, control or "
    "unassigned characters"
)
MAX_NUMERIC_DATE = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second a Timestamp holds


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's `sub`, the permissions it grants, and until when (a Unix
    time, leeway included: a watch stream ends UNAUTHENTICATED then, shared.watch)."""

    subject: str
    permissions: frozenset[str]
    expires: float = field(default=math.inf, compare=False)


_PRINCIPAL: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "principal", default=None
)


def current_principal() -> Principal:
    """The caller of the RPC being served; set by the interceptor before the servicer runs."""
    principal = _PRINCIPAL.get()
    if principal is None:
        raise Unauthenticated("no authenticated caller for this call")
    return principal


def bind_principal(principal: Principal) -> contextvars.Token[Principal | None]:
    return _PRINCIPAL.set(principal)


def unbind_principal(token: contextvars.Token[Principal | None]) -> None:
    _PRINCIPAL.reset(token)


def authorization(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The call's one `authorization` header, or None; more than one is refused.

    With two, which one counts would depend on who reads them (a proxy may check the first).
    """
    values = [value for key, value in metadata if key == "authorization"]
    if len(values) > 1:
        raise Unauthenticated(
            f"the call has {len(values)} authorization headers; send exactly one",
            reason="MALFORMED_CREDENTIALS",
        )
    # grpc gives text for every key but those ending in -bin.
    return values[0] if values else None  # type: ignore[return-value]


class TokenVerifier:
    """Turns an `authorization` header into a Principal, or raises Unauthenticated."""

    def __init__(self, settings: AuthSettings) -> None:
        self._signing_keys: SigningKeys | None = None
        self._key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | str = ""  # unused with JWKS
        self._algorithms: list[str] = []
        if settings.jwks_url:
            self._signing_keys = SigningKeys(
                settings.jwks_url,
                refresh_seconds=settings.jwks_refresh_seconds,
                retry_seconds=settings.jwks_retry_seconds,
            )
        elif settings.public_key:
            self._key, self._algorithms = _public_key(settings.public_key)
        elif settings.secret:
            self._key, self._algorithms = settings.secret, ["HS256"]
        else:
            raise ValueError("AuthSettings has no key")
        self._audience = settings.audience
        self._issuer = settings.issuer
        self._leeway = settings.leeway
        # token -> (principal, when it stops counting, the JWKS key that verified it or None)
        self._verified: OrderedDict[str, tuple[Principal, float, PyJWK | None]] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated(
                "missing authorization metadata: send 'authorization: Bearer <JWT>'",
                reason="MISSING_CREDENTIALS",
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "authorization metadata must be 'Bearer <JWT>'", reason="MALFORMED_CREDENTIALS"
            )
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("bearer token is too long", reason="MALFORMED_CREDENTIALS")
        token = token.strip()
        with self._lock:
            cached = self._verified.get(token)
            if cached is not None and time.time() < cached[1] and self._published(cached[2]):
                self._verified.move_to_end(token)
                return cached[0]
        principal, expires, key = self._decode(token)
        with self._lock:
            self._verified[token] = (principal, expires, key)
            self._verified.move_to_end(token)
            while len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return principal

    def _published(self, key: PyJWK | None) -> bool:
        return key is None or self._signing_keys is None or self._signing_keys.holds(key)

    def _decode(self, token: str) -> tuple[Principal, float, PyJWK | None]:
        key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | PyJWK | str = self._key
        algorithms, jwk = self._algorithms, None
        if self._signing_keys is not None:
            # The kid picks the key, and the key its one algorithm, never the token's `alg`.
            jwk = self._signing_keys.key(_key_id(token))
            key, algorithms = jwk, [jwk.algorithm_name]
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": self._audience is not None,
                    "verify_iss": self._issuer is not None,
                },
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("bearer token has expired", reason="TOKEN_EXPIRED") from None
        except jwt.PyJWTError as exc:  # also InvalidKeyError, which is no InvalidTokenError
            raise Unauthenticated(f"bearer token rejected: {exc}", reason="INVALID_TOKEN") from None
        _check_numeric_dates(claims)
        expires = float(claims["exp"]) + self._leeway
        principal = Principal(_subject(claims), _permissions(claims), expires)
        return principal, expires, jwk


def _key_id(token: str) -> str:
    """The token header's `kid`: which published key signed it."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"bearer token rejected: {exc}", reason="INVALID_TOKEN") from None
    if not isinstance(kid, str) or not kid:
        raise Unauthenticated(
            "bearer token has no 'kid' header naming the key that signed it",
            reason="INVALID_TOKEN",
        )
    return kid


def _public_key(pem: str) -> tuple[rsa.RSAPublicKey | ec.EllipticCurvePublicKey, list[str]]:
    """The key and the one algorithm it verifies: the key decides, never the token's header."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ConfigError(
            f"AUTH_JWT_PUBLIC_KEY_FILE is not a usable PEM public key: {exc}"
        ) from None
    if isinstance(key, rsa.RSAPublicKey):
        return key, ["RS256"]
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key, ["ES256"]
    raise ConfigError(
        "AUTH_JWT_PUBLIC_KEY_FILE must hold an RSA (RS256) or P-256 EC (ES256) public key"
    )


def _check_numeric_dates(claims: dict[str, Any]) -> None:
    """exp, nbf and iat must be JSON numbers within years 1970-9999 (RFC 7519 NumericDate).

    PyJWT accepts what int() accepts — "123" as text, true, 10**400 — and an exp past
    what a float holds broke the verified-token cache (INTERNAL).
    """
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if name not in claims or (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and 0 <= value <= MAX_NUMERIC_DATE
        ):
            continue
        raise Unauthenticated(
            f"bearer token claim {name!r} must be a number of seconds since 1970, "
            "before the year 10000",
            reason="INVALID_TOKEN",
        )


def valid_principal(subject: object) -> TypeGuard[str]:
    """1-255 characters, each a letter, mark, number, punctuation or symbol.

    A principal is stored, indexed and logged: no control, format or unassigned characters,
    no spaces or line breaks, nothing PostgreSQL cannot store (NUL, lone surrogates). 255 is
    OpenID Connect's limit for `sub`, and keeps every index row far below PostgreSQL's.
    """
    return (
        isinstance(subject, str)
        and 1 <= len(subject) <= MAX_PRINCIPAL_LENGTH
        and not any(unicodedata.category(character)[0] in "CZ" for character in subject)
    )


def _subject(claims: dict[str, Any]) -> str:
    subject = claims.get("sub")
    if not valid_principal(subject):
        raise Unauthenticated(f"bearer token 'sub': {PRINCIPAL_RULE}", reason="INVALID_PRINCIPAL")
    return subject


def _permissions(claims: dict[str, Any]) -> frozenset[str]:
    listed = claims.get("permissions")
    if listed is None:
        scope = claims.get("scope", "")
        listed = scope.split() if isinstance(scope, str) else None
    if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
        raise Unauthenticated(
            "bearer token 'permissions' must be a list of strings (or 'scope' a string)",
            reason="INVALID_TOKEN",
        )
    return frozenset(listed)


def mint_token(
    settings: AuthSettings,
    subject: str,
    permissions: Iterable[str],
    *,
    ttl_seconds: int = 3600,
) -> str:
    """An HS256 token for subject, signed with the configured secret (operators, --dev, tests)."""
    if not settings.secret:
        raise ValueError("minting needs AUTH_JWT_SECRET (public-key set-ups mint elsewhere)")
    if not valid_principal(subject):
        raise ValueError(PRINCIPAL_RULE)
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "permissions": sorted(permissions), "iat": now}
    claims["exp"] = now + ttl_seconds
    if settings.audience:
        claims["aud"] = settings.audience
    if settings.issuer:
        claims["iss"] = settings.issuer
    return jwt.encode(claims, settings.secret, algorithm="HS256")


# ---------------------------------------------------------------------------
# Authorisation: what the method's (shared.v1.auth) option asks for.
# ---------------------------------------------------------------------------


@functools.cache
def method_requirement(method: str) -> auth_pb2.MethodAuth | None:
    """The (shared.v1.auth) option of `/pkg.Service/Method`, or None when it declares none."""
    service, _, name = method.lstrip("/").partition("/")
    try:
        descriptor = descriptor_pool.Default().FindMethodByName(f"{service}.{name}")
    except KeyError:
        return None
    options = descriptor.GetOptions()
    if not options.HasExtension(auth_pb2.auth):
        return None
    return options.Extensions[auth_pb2.auth]


def authorize(principal: Principal, method: str) -> None:
    """Raise PermissionDenied unless principal may call method; no option means no one may."""
    requirement = method_requirement(method)
    which = requirement.WhichOneof("requirement") if requirement is not None else None
    if requirement is not None and which == "permission" and requirement.permission:
        if requirement.permission not in principal.permissions:
            raise PermissionDenied(
                f"{method} needs the permission {requirement.permission!r}",
                reason="MISSING_PERMISSION",
                metadata={"permission": requirement.permission},
            )
        return
    if requirement is not None and which == "authenticated" and requirement.authenticated:
        return
    raise PermissionDenied(
        f"{method} declares no access rule and is refused for every caller",
        reason="METHOD_NOT_DECLARED",
    )
