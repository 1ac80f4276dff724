"""One frozen Settings object per process, built from command-line flags and the environment.

Precedence: a flag given on the command line, then `<PREFIX>_<FLAG>` (or `AUTH_*`) from the
environment, then the default. This is the only module that reads os.environ.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

LOG_FORMATS = ("text", "json")


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
    # The service's own settings (ServiceDefinition.options) by name; absent ones are defaults.
    options: Mapping[str, int] = field(default_factory=dict)


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
    options: Sequence[Option] = (),
) -> Settings:
    """Settings for one service from parsed flags (None = not given) and the environment.

    require_auth=False is for commands that serve no calls (migrate, seed, token); options
    are the service's own settings (ServiceDefinition.options).
    """
    environ = os.environ if environ is None else environ

    def pick(flag: str) -> tuple[object | None, str]:
        return _flag_or_env(flags, environ, flag, f"{env_prefix}_{flag.upper()}")

    host, _ = pick("host")
    port, port_source = pick("port")
    database_url, url_source = pick("database_url")
    dev, dev_source = pick("dev")
    workers, workers_source = pick("workers")
    grace, grace_source = pick("grace_period")
    metrics_port, metrics_source = pick("metrics_port")

    database_url = str(database_url or default_database_url(service))
    if not database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError(
            f"{url_source} must start with sqlite:/// or postgresql://, got {database_url!r}"
        )
    try:
        grace_period = float(grace) if grace is not None else 10.0  # type: ignore[arg-type]
    except ValueError:
        raise ConfigError(f"{grace_source} must be a number of seconds, got {grace!r}") from None

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
