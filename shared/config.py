"""One frozen Settings object per process, built from command-line flags and the environment.

Precedence: a flag given on the command line, then `<PREFIX>_<FLAG>` (or `AUTH_*`) from the
environment, then the default. This is the only module that reads os.environ.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

LOG_FORMATS = ("text", "json")
DAY = 86_400.0


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the flag and its variable."""


@dataclass(frozen=True)
class AuthSettings:
    """How bearer tokens are verified and minted."""

    secret: str | None = None  # AUTH_JWT_SECRET: HS256
    public_key: str | None = None  # PEM read from AUTH_JWT_PUBLIC_KEY_FILE: RS256/ES256
    audience: str | None = None  # AUTH_JWT_AUDIENCE: checked when set
    issuer: str | None = None  # AUTH_JWT_ISSUER: checked when set
    jwks_url: str | None = None  # AUTH_JWKS_URL: keys by `kid`, RS256/ES256/EdDSA (shared.jwks)
    leeway: int = 30  # AUTH_JWT_LEEWAY: seconds of clock skew allowed on exp, nbf and iat
    # Not in the environment: the defaults suit identity providers; tests shorten them.
    jwks_refresh_seconds: float = 300.0  # the key set is fetched again when this old
    jwks_retry_seconds: float = 10.0  # at most one fetch per this long, for unknown kids too

    @property
    def configured(self) -> bool:
        return bool(self.secret or self.public_key or self.jwks_url)


@dataclass(frozen=True)
class Settings:
    """Everything a service process needs to start."""

    service: str
    host: str
    port: int
    database_url: str
    dev: bool
    workers: int
    grace_period: float
    auth: AuthSettings
    log_format: str = "text"  # LOG_FORMATS: how the process writes its log lines
    metrics_port: int | None = None  # /metrics (shared.metrics); None: no metrics at all
    tracing: bool = False  # OTLP spans (shared.tracing); the SDK reads its own OTEL_* variables
    # Lifetimes, in seconds (LIFETIMES); each service reads those it declares.
    idempotency_ttl: float = DAY  # *_IDEMPOTENCY_TTL: request ids and idempotency keys
    draft_ttl: float = 30 * DAY  # REPORT_DRAFT_TTL: untouched report drafts; 0: never
    proposal_ttl: float = 7 * DAY  # COHORT_PROPOSAL_TTL: pending soft proposals; 0: never
    purge_interval: float = 60.0  # *_PURGE_INTERVAL: seconds between purges (shared.purge)
    event_retention: float = 3 * DAY  # *_EVENT_RETENTION: watch events kept (shared.events)
    # *_CLOCK_OFFSET: seconds the service's clock runs ahead (shared.clock). Tests only: it
    # moves every time the service stores or compares, never token validation.
    clock_offset: float = 0.0

    # The service's own settings (ServiceDefinition.options) by name; absent ones are defaults.
    options: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Lifetime:
    """A duration setting: how it is described, its least value, and what 0 means."""

    help: str
    minimum: float = 0.0


# The lifetimes a service may declare (ServiceDefinition.lifetimes), by Settings field.
LIFETIMES = {
    "idempotency_ttl": Lifetime(
        "how long request ids and idempotency keys are remembered (at least 24h)", DAY
    ),
    "draft_ttl": Lifetime("how long an untouched report draft lives; 0: forever"),
    "proposal_ttl": Lifetime("how long a soft proposal may stay pending; 0: forever"),
    "purge_interval": Lifetime("seconds between purges of what expired; 0: no purging"),
    "event_retention": Lifetime(
        "how long watch events are kept, so that a stream can resume (at least 24h)", DAY
    ),
}


@dataclass(frozen=True)
class Option:
    """A whole-number setting of one service: `--NAME` on serve, `<PREFIX>_<NAME>` in the
    environment (`revisions_kept`: `--revisions-kept`, `REPORT_REVISIONS_KEPT`)."""

    name: str
    help: str
    default: int
    minimum: int
    maximum: int

    @property
    def flag(self) -> str:
        return f"--{self.name.replace('_', '-')}"

    def of(self, options: Mapping[str, int]) -> int:
        """This option's value among options (Settings.options), or its default."""
        return options.get(self.name, self.default)


def default_database_url(service: str) -> str:
    return f"sqlite:///var/{service}.db"


def _picker(
    flags: Mapping[str, object], environ: Mapping[str, str], env_prefix: str
) -> Callable[[str], tuple[object | None, str]]:
    """pick(flag): the flag's value or <PREFIX>_<FLAG>'s, and where it came from."""

    def pick(flag: str) -> tuple[object | None, str]:
        return _flag_or_env(flags, environ, flag, f"{env_prefix}_{flag.upper()}")

    return pick


def _seconds(value: object, source: str, default: float) -> float:
    if value is None:
        return default
    try:
        return float(value)  # type: ignore[arg-type]
    except ValueError:
        raise ConfigError(f"{source} must be a number of seconds, got {value!r}") from None


def _flag_or_env(
    flags: Mapping[str, object], environ: Mapping[str, str], flag: str, variable: str
) -> tuple[object | None, str]:
    value = flags.get(flag)
    if value is not None:
        return value, f"--{flag.replace('_', '-')}"
    value = environ.get(variable)
    if value not in (None, ""):
        return value, variable
    return None, variable


def _integer(value: object, source: str, minimum: int, maximum: int) -> int:
    try:
        number: int = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ConfigError(f"{source} must be a whole number, got {value!r}") from None
    if not minimum <= number <= maximum:
        raise ConfigError(f"{source} must be between {minimum} and {maximum}, got {number}")
    return number


# A number of seconds, or a number with one unit. Written here: the grammar is four units,
# and the duration libraries parse larger ones (ISO 8601 `P30D`, prose) than a setting needs.
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY}


def duration(value: object, source: str, minimum: float = 0.0) -> float:
    """Seconds from `90`, `90s`, `15m`, `24h` or `30d`; ConfigError naming source otherwise."""
    match = _DURATION.fullmatch(str(value).strip().lower())
    if match is None:
        raise ConfigError(
            f"{source} must be a duration such as 3600, 90s, 15m, 24h or 30d, got {value!r}"
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < minimum:
        raise ConfigError(f"{source} must be at least {_text(minimum)}, got {value!r}")
    return seconds


def _text(seconds: float) -> str:
    return f"{seconds / 3600:g}h" if seconds >= 3600 else f"{seconds:g}s"


def _offset(value: object, source: str) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{source} must be a number of seconds, got {value!r}") from None
    if not abs(seconds) < 100 * 365 * DAY:  # NaN too
        raise ConfigError(f"{source} must be within a hundred years, got {value!r}")
    return seconds


def _boolean(value: object, source: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{source} must be true or false, got {value!r}")


def load_auth(environ: Mapping[str, str] | None = None) -> AuthSettings:
    """AUTH_* settings, shared by both services."""
    environ = os.environ if environ is None else environ
    public_key = None
    key_file = environ.get("AUTH_JWT_PUBLIC_KEY_FILE") or None
    if key_file:
        try:
            public_key = Path(key_file).read_text()
        except OSError as exc:
            raise ConfigError(f"AUTH_JWT_PUBLIC_KEY_FILE: cannot read {key_file}: {exc}") from None
        if "-----BEGIN" not in public_key:
            raise ConfigError(f"AUTH_JWT_PUBLIC_KEY_FILE: {key_file} is not a PEM public key")
    jwks_url = _jwks_url(environ.get("AUTH_JWKS_URL") or None)
    if jwks_url and public_key:
        raise ConfigError(
            "AUTH_JWKS_URL and AUTH_JWT_PUBLIC_KEY_FILE are both set: choose one source of keys"
        )
    leeway = environ.get("AUTH_JWT_LEEWAY") or None
    return AuthSettings(
        secret=environ.get("AUTH_JWT_SECRET") or None,
        public_key=public_key,
        audience=environ.get("AUTH_JWT_AUDIENCE") or None,
        issuer=environ.get("AUTH_JWT_ISSUER") or None,
        jwks_url=jwks_url,
        leeway=_integer(leeway, "AUTH_JWT_LEEWAY", 0, 300) if leeway is not None else 30,
    )


def _jwks_url(url: str | None) -> str | None:
    """https://, file://, or http:// to a loopback address (plain http elsewhere lets anyone
    on the path substitute the keys)."""
    if url is None:
        return None
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file" and parts.path and parts.netloc in ("", "localhost"):
        return url
    if scheme == "https" and parts.hostname:
        return url
    if scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return url
    raise ConfigError(
        "AUTH_JWKS_URL must be an https:// URL, a file:// path, or http:// to a loopback "
        f"address, got {url!r}"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_log_format(
    env_prefix: str, flags: Mapping[str, object], environ: Mapping[str, str] | None = None
) -> str:
    """--log-format or <PREFIX>_LOG_FORMAT; read first, so that other errors are told in it."""
    environ = os.environ if environ is None else environ
    value, source = _flag_or_env(flags, environ, "log_format", f"{env_prefix}_LOG_FORMAT")
    chosen = str(value or "text").strip().lower()
    if chosen not in LOG_FORMATS:
        raise ConfigError(f"{source} must be one of {', '.join(LOG_FORMATS)}, got {value!r}")
    return chosen


def load_settings(
    service: str,
    env_prefix: str,
    default_port: int,
    flags: Mapping[str, object],
    environ: Mapping[str, str] | None = None,
    *,
    require_auth: bool = True,
    lifetimes: tuple[str, ...] = ("purge_interval",),
    options: Sequence[Option] = (),
) -> Settings:
    """Settings for one service from parsed flags (None = not given) and the environment.

    require_auth=False is for commands that serve no calls (migrate, seed, token).
    lifetimes: the LIFETIMES the service reads; the others keep their defaults; options are
    the service's own whole-number settings (ServiceDefinition.options).
    """
    environ = os.environ if environ is None else environ
    pick = _picker(flags, environ, env_prefix)
    host, _ = pick("host")
    port, port_source = pick("port")
    database_url, url_source = pick("database_url")
    dev, dev_source = pick("dev")
    workers, workers_source = pick("workers")
    grace, grace_source = pick("grace_period")
    metrics_port, metrics_source = pick("metrics_port")
    clock, clock_source = pick("clock_offset")

    database_url = str(database_url or default_database_url(service))
    if not database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError(
            f"{url_source} must start with sqlite:/// or postgresql://, got {database_url!r}"
        )
    grace_period = _seconds(grace, grace_source, 10.0)

    dev = _boolean(dev, dev_source) if dev is not None else False
    auth = load_auth(environ)
    if require_auth and not auth.configured:
        if not dev:
            raise ConfigError(
                "no token key configured: set AUTH_JWT_SECRET (HS256), "
                "AUTH_JWT_PUBLIC_KEY_FILE (PEM, RS256/ES256) or AUTH_JWKS_URL, "
                "or start with --dev"
            )
        # --dev alone: a throwaway secret, so that local runs need no set-up.
        auth = dataclasses.replace(auth, secret=secrets.token_urlsafe(32))
    return Settings(
        service=service,
        host=str(host or "127.0.0.1"),
        port=_integer(port, port_source, 0, 65535) if port is not None else default_port,
        database_url=database_url,
        dev=dev,
        workers=_integer(workers, workers_source, 1, 64) if workers is not None else 1,
        grace_period=grace_period,
        auth=auth,
        log_format=load_log_format(env_prefix, flags, environ),
        metrics_port=(
            _integer(metrics_port, metrics_source, 0, 65535) if metrics_port is not None else None
        ),
        tracing=tracing_enabled(environ),
        clock_offset=_offset(clock, clock_source) if clock is not None else 0.0,
        **{
            name: duration(value, source, LIFETIMES[name].minimum)
            for name in lifetimes
            for value, source in [pick(name)]
            if value is not None
        },
        options=_options(options, pick),
    )


def _options(
    options: Sequence[Option], pick: Callable[[str], tuple[object | None, str]]
) -> dict[str, int]:
    values = {}
    for option in options:
        value, source = pick(option.name)
        if value is not None:
            values[option.name] = _integer(value, source, option.minimum, option.maximum)
    return values


def tracing_enabled(environ: Mapping[str, str]) -> bool:
    """Tracing is off unless asked for: OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint set
    (OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) without
    OTEL_TRACES_EXPORTER=none. OpenTelemetry's own default (otlp) is not taken: a service
    started with no collector would log an export failure every few seconds. On, the
    protocol must be gRPC, the one exporter installed: one set to HTTP would export nowhere."""
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    if exporter not in ("", "otlp"):
        raise ConfigError(f"OTEL_TRACES_EXPORTER must be otlp or none, got {exporter!r}")
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    enabled = exporter == "otlp" or bool(endpoint)
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = environ.get(variable, "").strip()
        if enabled and protocol not in ("", "grpc"):
            raise ConfigError(
                f"{variable} must be grpc (the services export spans over OTLP/gRPC), "
                f"got {protocol!r}"
            )
    return enabled


# ---------------------------------------------------------------------------
# The edge (draft-edge): Envoy in front of both services
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """One address of a service behind the edge."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class EdgeSettings:
    """Everything draft-edge needs to write Envoy's configuration and run it."""

    host: str
    port: int
    cohort: tuple[Upstream, ...]  # cohort-service's replicas
    report: tuple[Upstream, ...]  # report-service's replicas
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call (gRPC-Web and REST)
    metrics_port: int | None = None  # Envoy's /stats/prometheus; None: not served
    health_port: int | None = None  # GET /ready for probes (draft_edge.config); None: not served
    grace_period: float = 10.0  # seconds in-flight requests get on SIGTERM
    log_format: str = "text"
    # A service takes 4 MiB messages; the same message in JSON is larger (field names,
    # escapes), so a REST body up to twice that is accepted.
    max_request_bytes: int = 8 * 1024 * 1024
    call_timeout: int = 60  # seconds any unary call may take through the edge
    rate_limit: int | None = None  # requests per second per client address; None: no limit


def _upstreams(value: object, source: str) -> tuple[Upstream, ...]:
    """HOST:PORT[,HOST:PORT...]; an IPv6 host in brackets."""
    found = []
    for item in str(value).split(","):
        text = item.strip()
        host, colon, port = text.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not colon or not host or not port.isdigit():
            raise ConfigError(f"{source} must be HOST:PORT[,HOST:PORT...], got {text!r}")
        found.append(Upstream(host, _integer(port, source, 1, 65535)))
    if len(set(found)) != len(found):
        raise ConfigError(f"{source} names an address twice: {value!r}")
    return tuple(found)


def _origins(value: object, source: str) -> tuple[str, ...]:
    """Exact origins, as a browser sends them: scheme://host[:port], no path."""
    found = []
    for item in filter(None, (part.strip() for part in str(value).split(","))):
        parts = urlsplit(item)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or item != (f"{parts.scheme}://{parts.netloc}")
        ):
            raise ConfigError(
                f"{source} must list origins such as https://app.example.com or "
                f"http://localhost:3000 (scheme, host, optional port; no path), got {item!r}"
            )
        found.append(item)
    return tuple(found)


def load_edge_settings(
    flags: Mapping[str, object], environ: Mapping[str, str] | None = None
) -> EdgeSettings:
    """draft-edge's settings from parsed flags (None = not given) and EDGE_* variables."""
    environ = os.environ if environ is None else environ
    pick = _picker(flags, environ, "EDGE")
    host, _ = pick("host")
    port, port_source = pick("port")
    upstreams = {}
    for service in ("cohort", "report"):
        value, source = pick(service)
        if value is None:
            raise ConfigError(
                f"--{service} / EDGE_{service.upper()} is required: "
                f"the {service}-service's HOST:PORT (several, comma-separated, for replicas)"
            )
        upstreams[service] = _upstreams(value, source)
    origins, origins_source = pick("cors_origins")
    metrics_port, metrics_source = pick("metrics_port")
    health_port, health_source = pick("health_port")
    grace, grace_source = pick("grace_period")
    max_request, max_request_source = pick("max_request_bytes")
    timeout, timeout_source = pick("call_timeout")
    rate, rate_source = pick("rate_limit")
    grace_period = _seconds(grace, grace_source, 10.0)
    if not 0 <= grace_period <= 3600:
        raise ConfigError(f"{grace_source} must be 0-3600 seconds, got {grace!r}")
    return EdgeSettings(
        host=str(host or "127.0.0.1"),
        port=_integer(port, port_source, 0, 65535) if port is not None else 8080,
        cohort=upstreams["cohort"],
        report=upstreams["report"],
        cors_origins=_origins(origins, origins_source) if origins is not None else (),
        metrics_port=(
            _integer(metrics_port, metrics_source, 0, 65535) if metrics_port is not None else None
        ),
        health_port=(
            _integer(health_port, health_source, 0, 65535) if health_port is not None else None
        ),
        grace_period=grace_period,
        log_format=load_log_format("EDGE", flags, environ),
        max_request_bytes=(
            _integer(max_request, max_request_source, 1024, 64 * 1024 * 1024)
            if max_request is not None
            else EdgeSettings.max_request_bytes
        ),
        call_timeout=(
            _integer(timeout, timeout_source, 1, 3600)
            if timeout is not None
            else EdgeSettings.call_timeout
        ),
        rate_limit=_integer(rate, rate_source, 1, 1_000_000) if rate is not None else None,
    )
