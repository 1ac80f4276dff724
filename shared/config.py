"""One frozen Settings object per process, built from command-line flags and the environment.

Precedence: a flag given on the command line, then `<PREFIX>_<FLAG>` (or `AUTH_*`) from the
environment, then the default. This is the only module that reads os.environ.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the flag and its variable."""


@dataclass(frozen=True)
class AuthSettings:
    """How bearer tokens are verified and minted."""

    secret: str | None = None  # AUTH_JWT_SECRET: HS256
    public_key: str | None = None  # PEM read from AUTH_JWT_PUBLIC_KEY_FILE: RS256/ES256
    audience: str | None = None  # AUTH_JWT_AUDIENCE: checked when set
    issuer: str | None = None  # AUTH_JWT_ISSUER: checked when set

    @property
    def configured(self) -> bool:
        return bool(self.secret or self.public_key)


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
    metrics_port: int | None = None  # /metrics (shared.metrics); None: no metrics at all


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
        number = int(value)  # type: ignore[arg-type]
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
    return AuthSettings(
        secret=environ.get("AUTH_JWT_SECRET") or None,
        public_key=public_key,
        audience=environ.get("AUTH_JWT_AUDIENCE") or None,
        issuer=environ.get("AUTH_JWT_ISSUER") or None,
    )


def load_settings(
    service: str,
    env_prefix: str,
    default_port: int,
    flags: Mapping[str, object],
    environ: Mapping[str, str] | None = None,
    *,
    require_auth: bool = True,
) -> Settings:
    """Settings for one service from parsed flags (None = not given) and the environment.

    require_auth=False is for commands that serve no calls (migrate, seed, token).
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
        grace_period = float(grace) if grace is not None else 10.0
    except ValueError:
        raise ConfigError(f"{grace_source} must be a number of seconds, got {grace!r}") from None

    dev = _boolean(dev, dev_source) if dev is not None else False
    auth = load_auth(environ)
    if require_auth and not auth.configured:
        if not dev:
            raise ConfigError(
                "no token key configured: set AUTH_JWT_SECRET (HS256) or "
                "AUTH_JWT_PUBLIC_KEY_FILE (PEM, RS256/ES256), or start with --dev"
            )
        # --dev alone: a throwaway secret, so that local runs need no set-up.
        auth = AuthSettings(
            secret=secrets.token_urlsafe(32), audience=auth.audience, issuer=auth.issuer
        )
    return Settings(
        service=service,
        host=str(host or "127.0.0.1"),
        port=_integer(port, port_source, 0, 65535) if port is not None else default_port,
        database_url=database_url,
        dev=dev,
        workers=_integer(workers, workers_source, 1, 64) if workers is not None else 1,
        grace_period=grace_period,
        auth=auth,
        metrics_port=(
            _integer(metrics_port, metrics_source, 0, 65535) if metrics_port is not None else None
        ),
    )
