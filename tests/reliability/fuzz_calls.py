"""Hypothesis strategies for what surrounds a request: its token, its metadata, its deadline.

A client controls every header it sends and its deadline; a token signer (an identity
provider, or whoever holds the key) controls every claim. `calls(...)` draws all three:
validly signed tokens with extreme and oddly typed claims, `authorization` header variants,
extra, repeated and binary headers up to a few KiB (grpc's limit for all of them is 8 KiB),
and deadlines from 1 ms to years, or none.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import jwt
from hypothesis import strategies as st

from shared.auth import MAX_PRINCIPAL_LENGTH
from shared.config import AuthSettings
from tests.support import ALL_PERMISSIONS

DAY = 86_400.0
# Below ~0.1 s a call may end DEADLINE_EXCEEDED before or while it runs; that is its answer.
SHORT_DEADLINES = (0.001, 0.01, 0.05)
DEADLINES = (None, *SHORT_DEADLINES, 1.0, 60.0, 24.8 * DAY, 25 * DAY, 366 * DAY, 5000 * DAY)
_ABSENT = object()  # a claim left out of the token
# grpc refuses a call whose headers pass 8 KiB (HPACK counts 32 bytes per entry besides key
# and value; the client's own headers take about 600) with RESOURCE_EXHAUSTED, by itself,
# before any of our code. Extra headers are drawn within that; a token alone may pass it.
GRPC_METADATA_LIMIT = 8192 - 600
_METADATA_BUDGET = 7500


@dataclass(frozen=True)
class Call:
    """One call's envelope: the metadata sent, the deadline, and the token's claims."""

    metadata: tuple[tuple[str, str | bytes], ...]
    deadline: float | None
    claims: dict
    authorization: str | None  # the one authorization header, when there is exactly one

    @property
    def over_grpc_limit(self) -> bool:
        return metadata_size(self.metadata) > GRPC_METADATA_LIMIT


def _numeric_dates(valid: int) -> st.SearchStrategy:
    odd = st.sampled_from(
        [
            10**400,
            -(10**400),
            253_402_300_800,  # the first second of year 10000
            1e300,
            math.inf,
            -math.inf,
            math.nan,
            True,
            False,
            str(valid),
            [valid],
            {"t": valid},
            None,
            0,
            -1,
            valid + 0.5,
            _ABSENT,
        ]
    )
    return st.sampled_from([st.just(valid)] * 3 + [odd]).flatmap(lambda strategy: strategy)


def _subjects(owner: str) -> st.SearchStrategy:
    letters = st.characters(exclude_categories=("Cs",))
    odd = st.one_of(
        st.text(letters, min_size=1, max_size=40).map(lambda text: f"user:{text}"),
        st.sampled_from([MAX_PRINCIPAL_LENGTH - 5, MAX_PRINCIPAL_LENGTH - 4, 5000]).map(
            lambda size: "user:" + "a" * size
        ),
        st.sampled_from(
            [
                "",
                " ",
                "user:a\x00b",
                "user:\ud800",
                "user:a\nb",
                "user:\u202eb",
                "user:é",
                "team:販売",
                "user:a?b#c/d%2F:e",
                "user:😀",
                5,
                None,
                [owner],
                {"id": owner},
                True,
                _ABSENT,
            ]
        ),
    )
    return st.sampled_from([st.just(owner)] * 3 + [odd]).flatmap(lambda strategy: strategy)


def _permissions(odd: bool = True) -> st.SearchStrategy[dict]:
    """The permission claims: valid ones always grant everything, so that an OK is readable."""
    everything = list(ALL_PERMISSIONS)
    valid = st.sampled_from(
        [
            {"permissions": everything},
            {"permissions": _ABSENT, "scope": " ".join(everything)},
            {"permissions": everything + [f"junk:{i}" for i in range(100)]},
        ]
    )
    odd_ones = st.sampled_from(
        [
            {"permissions": {"report:read": True}},
            {"permissions": " ".join(everything)},
            {"permissions": [everything]},
            {"permissions": [*everything, 5]},
            {"permissions": None},
            {"permissions": _ABSENT, "scope": everything},
            {"permissions": _ABSENT, "scope": 5},
            {"permissions": _ABSENT},
        ]
    )
    if not odd:
        return valid
    return st.sampled_from([valid] * 3 + [odd_ones]).flatmap(lambda strategy: strategy)


def claims(auth: AuthSettings, owner: str) -> st.SearchStrategy[dict]:
    now = int(time.time())
    odd_audience = st.sampled_from([auth.audience, [auth.audience], [auth.audience, 5], 5, "x"])
    return st.builds(
        lambda sub, exp, nbf, iat, permissions, aud, extra: {
            "sub": sub,
            "exp": exp,
            "nbf": nbf,
            "iat": iat,
            "aud": aud,
            "iss": auth.issuer,
            **permissions,
            **extra,
        },
        _subjects(owner),
        _numeric_dates(now + 600),
        st.one_of(st.just(_ABSENT), _numeric_dates(now - 5)),
        st.one_of(st.just(_ABSENT), _numeric_dates(now)),
        _permissions(),
        st.sampled_from([st.just(auth.audience)] * 4 + [odd_audience]).flatmap(lambda s: s),
        st.dictionaries(
            st.sampled_from(["jti", "azp", "roles", "x"]),
            st.sampled_from([1, "x", None, [1], {"a": 1}, 1e308]),
            max_size=2,
        ),
    )


def plain_claims(auth: AuthSettings, owner: str) -> st.SearchStrategy[dict]:
    now = int(time.time())
    return _permissions(odd=False).map(
        lambda permissions: {
            "sub": owner,
            "exp": now + 600,
            "iat": now,
            "aud": auth.audience,
            "iss": auth.issuer,
            **permissions,
        }
    )


def sign(auth: AuthSettings, claims_: dict) -> str:
    payload = {name: value for name, value in claims_.items() if value is not _ABSENT}
    return jwt.encode(payload, auth.secret, algorithm="HS256")


def _authorization_headers(token: str) -> st.SearchStrategy[list[str]]:
    """The authorization headers sent: usually one well-formed, else variants or several."""
    variants = st.sampled_from(
        [
            f"bearer {token}",
            f"BEARER {token}",
            f"Bearer  {token}",
            f"Bearer {token} ",
            f" Bearer {token}",
            f"Bearer {token}x",
            f"Bearer {token[:-3]}",
            f"Basic {token}",
            f"Bearer {token}, Bearer {token}",
            token,
            "Bearer",
            "Bearer ",
            "",
            "Bearer " + "a" * 6000,
            "Bearer a.b.c",
            "Bearer ..",
        ]
    ).map(lambda header: [header])
    several = st.sampled_from([[f"Bearer {token}"] * 2, [f"Bearer {token}", "Bearer x"], []])
    plain = st.just([f"Bearer {token}"])
    return st.sampled_from([plain] * 4 + [variants, several]).flatmap(lambda s: s)


_KEYS = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=20)
_VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=64)


def _extra_headers() -> st.SearchStrategy[list[tuple[str, str | bytes]]]:
    """Headers the service does not read: plain, binary (`-bin`), repeated, a few KiB long."""
    header = st.one_of(
        st.tuples(_KEYS.filter(lambda k: not k.endswith("-bin")), _VALUES),
        st.tuples(_KEYS.map(lambda key: f"{key}-bin"), st.binary(max_size=64)),
        st.tuples(
            st.sampled_from(["x-huge", "grpc-x", "authorization-bin", "cookie"]),
            st.sampled_from([500, 3000, 6000]),
        ).map(lambda pair: (pair[0], (b"\xff" if pair[0].endswith("-bin") else "v") * pair[1])),
        st.sampled_from(
            [
                ("authorization-bin", b"Bearer \x00"),
                ("x-forwarded-user", "user:bob"),
                ("x-principal", "user:bob"),
                ("grpc-previous-rpc-attempts", "x"),
                ("x-request-id", "\\x00"),
            ]
        ),
    )

    return st.lists(header, max_size=4)


def metadata_size(metadata) -> int:
    return sum(len(key) + len(value) + 32 for key, value in metadata)


def calls(auth: AuthSettings, owner: str) -> st.SearchStrategy[Call]:
    @st.composite
    def build(draw) -> Call:
        # Half the calls carry a plain token, so that odd headers and deadlines reach the RPC.
        drawn = draw(claims(auth, owner) if draw(st.booleans()) else plain_claims(auth, owner))
        headers = draw(_authorization_headers(sign(auth, drawn)))
        metadata = [("authorization", value) for value in headers]
        for header in draw(_extra_headers()):
            if metadata_size([*metadata, header]) <= _METADATA_BUDGET:
                metadata.append(header)
        draw(st.randoms()).shuffle(metadata)
        return Call(
            metadata=tuple(metadata),
            deadline=draw(st.sampled_from(DEADLINES)),
            claims=drawn,
            authorization=headers[0] if len(headers) == 1 else None,
        )

    return build()
