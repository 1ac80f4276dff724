"""Token signing keys published as a JWKS (AUTH_JWKS_URL): chosen by `kid`, cached, refreshed.

PyJWT parses the set (PyJWKSet) and binds each key to its one algorithm (PyJWK). Its fetching
client, PyJWKClient, is not used, because (PyJWT 2.15):
- it refuses file:// URLs;
- once its cache lifespan has passed, a failed fetch fails the call: cached keys do not
  outlive an outage of the endpoint;
- it fetches inside the call while holding the one lock every lookup takes, so a slow
  endpoint stalls calls whose key is already known;
- its cooldown starts only after a successful fetch: with the endpoint down, every token
  with an unknown kid fetches again, and waits for it;
- it reads the whole response, whatever its size.
So the fetching and caching below are written here, on urllib as PyJWKClient is.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.request

from jwt import PyJWK, PyJWKSet, PyJWTError

from shared.errors import Unauthenticated

_LOGGER = logging.getLogger(__name__)

ALGORITHMS = frozenset({"RS256", "ES256", "EdDSA"})
MAX_JWKS_BYTES = 1 << 20  # a provider's set is a few KiB; this bounds what a bad one costs
FETCH_SECONDS = 5.0  # one fetch, all of it; also the longest a call waits for one
UNKNOWN_KEY = "UNKNOWN_SIGNING_KEY"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could take an https URL to plain http; the URL is configured, so no need."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class SigningKeys:
    """The signing keys of one JWKS URL by kid; refreshed in the background, kept on failure.

    A call never waits for a refresh of keys it has: a stale set is refreshed in a thread
    while calls go on using it. Only a call whose kid is unknown waits, at most
    FETCH_SECONDS, and only if a fetch starts for it or is under way. At most one fetch
    starts per `retry_seconds`, failed ones included, so neither a flood of made-up kids
    nor an endpoint that is down turns into a fetch (and a wait) per call.
    """

    def __init__(
        self,
        url: str,
        *,
        refresh_seconds: float = 300.0,
        retry_seconds: float = 10.0,
        fetch_seconds: float = FETCH_SECONDS,
    ) -> None:
        self._url = url
        self._refresh_seconds = refresh_seconds
        self._retry_seconds = retry_seconds
        self._fetch_seconds = fetch_seconds
        self._keys: dict[str, PyJWK] = {}  # replaced whole, never changed: read without a lock
        self._document: object = None  # the set as last loaded, to tell whether it changed
        self._loaded_at = -math.inf  # time.monotonic() of the last successful fetch
        self._tried_at = -math.inf  # ... of the start of the last fetch
        self._fetching: threading.Event | None = None
        self._lock = threading.Lock()
        # Start-up tries once (bounded); if the endpoint is down the service starts anyway.
        first = self._fetch_if_due()
        if first is not None:
            first.wait(fetch_seconds)

    def key(self, kid: str) -> PyJWK:
        """The key named kid, or Unauthenticated (UNKNOWN_SIGNING_KEY)."""
        self._refresh_if_stale()
        key = self._keys.get(kid)
        if key is None:
            fetching = self._fetch_if_due()
            if fetching is not None:
                fetching.wait(self._fetch_seconds)
                key = self._keys.get(kid)
        if key is not None:
            return key
        if not self._keys:
            raise Unauthenticated(
                "no token signing keys could be loaded yet; retry later", reason=UNKNOWN_KEY
            )
        raise Unauthenticated(
            f"bearer token names a signing key that is not published: kid {kid[:64]!r}",
            reason=UNKNOWN_KEY,
        )

    def holds(self, key: PyJWK) -> bool:
        """Whether key is still in the set (a token verified with it earlier still counts)."""
        self._refresh_if_stale()
        return key.key_id is not None and self._keys.get(key.key_id) is key

    def _refresh_if_stale(self) -> None:
        if time.monotonic() - self._loaded_at >= self._refresh_seconds:
            self._fetch_if_due()

    def _fetch_if_due(self) -> threading.Event | None:
        """The fetch under way, else a new one if the last began retry_seconds ago, else None."""
        with self._lock:
            if self._fetching is not None:
                return self._fetching
            now = time.monotonic()
            if now - self._tried_at < self._retry_seconds:
                return None
            self._tried_at = now
            done = self._fetching = threading.Event()
        threading.Thread(target=self._fetch, args=(done,), name="jwks-fetch", daemon=True).start()
        return done

    def _fetch(self, done: threading.Event) -> None:
        try:
            document = read_jwks(self._url, self._fetch_seconds)
            if document != self._document:
                self._keys, self._document = signing_keys(document), document
            self._loaded_at = time.monotonic()
        except Exception as exc:  # whatever went wrong, the keys already loaded stay
            _LOGGER.warning(
                "cannot load token signing keys from AUTH_JWKS_URL %s: %s; keeping the %d "
                "loaded before",
                self._url,
                exc,
                len(self._keys),
            )
        finally:
            with self._lock:
                self._fetching = None
            done.set()


def read_jwks(url: str, seconds: float) -> object:
    """The JSON at url (https, http or file), refused past MAX_JWKS_BYTES or `seconds`."""
    deadline = time.monotonic() + seconds
    opener = urllib.request.build_opener(_NoRedirects)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    data = bytearray()
    with opener.open(request, timeout=seconds) as response:
        while chunk := response.read1(65536):
            data += chunk
            if len(data) > MAX_JWKS_BYTES:
                raise ValueError(f"the key set is larger than {MAX_JWKS_BYTES} bytes")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the key set took longer than {seconds:g} s to arrive")
    return json.loads(data)


def signing_keys(document: object) -> dict[str, PyJWK]:
    """The set's signature keys that have a kid and one of ALGORITHMS; others are skipped.

    Skipping matters: an `oct` (HS256) key in a published set would let anyone who reads the
    set sign tokens.
    """
    if not isinstance(document, dict):
        raise ValueError("the key set is not a JSON object")
    try:
        jwk_set = PyJWKSet.from_dict(document)
    except PyJWTError as exc:
        raise ValueError(str(exc)) from None
    keys = {
        key.key_id: key
        for key in jwk_set.keys
        if isinstance(key.key_id, str)
        and key.key_id
        and key.public_key_use in ("sig", None)
        and key.algorithm_name in ALGORITHMS
    }
    if not keys:
        raise ValueError(
            f"the key set has no signature key with a kid for {', '.join(sorted(ALGORITHMS))}"
        )
    return keys
