"""The command line both services share: serve, migrate, token, health, and a service's own
commands."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import peewee
from google.protobuf import descriptor_pool

from shared import failpoints
from shared.auth import PRINCIPAL_RULE, mint_token, valid_principal
from shared.config import (
    DAY,
    LIFETIMES,
    LOG_FORMATS,
    ConfigError,
    Settings,
    load_log_format,
    load_settings,
)
from shared.db import describe_database
from shared.logs import log_handler
from shared.probe import check_health
from shared.server import close_store, open_store, serve, serve_workers
from shared.service import ServiceDefinition
from shared.v1 import auth_pb2

_LOGGER = logging.getLogger(__name__)
# What a command tells its operator, as bare lines (text) or log records (json): `listening
# on HOST:PORT` and the like on stdout, the error it exits with on stderr.
_STDOUT = logging.getLogger("shared.cli.stdout")
_STDERR = logging.getLogger("shared.cli.stderr")


def service_permissions(definition: ServiceDefinition) -> list[str]:
    """Every permission the service's methods declare, read from their proto options."""
    found = set()
    pool = descriptor_pool.Default()
    for name in definition.service_names:
        for method in pool.FindServiceByName(name).methods:
            rule = method.GetOptions().Extensions[auth_pb2.auth]
            if rule.permission:
                found.add(rule.permission)
    return sorted(found)


def _settings(definition: ServiceDefinition, args: argparse.Namespace, **kw: Any) -> Settings:
    # The format first: a mistake in the other settings is then reported in it.
    configure_logging(load_log_format(definition.env_prefix, vars(args)))
    return load_settings(
        definition.name,
        definition.env_prefix,
        definition.default_port,
        vars(args),
        lifetimes=definition.lifetimes,
        options=definition.options,
        **kw,
    )


def _dev_banner(definition: ServiceDefinition, settings: Settings, port: int) -> str:
    token = mint_token(
        settings.auth, "user:dev", service_permissions(definition), ttl_seconds=12 * 3600
    )
    # A List call: it needs no arguments, so the printed line works as it is.
    service, method = next(
        (name, m.name)
        for name in definition.service_names
        for m in descriptor_pool.Default().FindServiceByName(name).methods
        if m.name.startswith("List")
    )
    url = f"http://{settings.host}:{port}/{service}/{method}"
    return "\n".join(
        [
            f"dev token for user:dev (12 h, every {definition.name} permission):",
            f"  {token}",
            "try:",
            f"  node_modules/.bin/buf curl --protocol grpc --http2-prior-knowledge "
            f"-H {shlex.quote('authorization: Bearer ' + token)} -d '{{}}' {url}",
        ]
    )


def _announce_database(definition: ServiceDefinition, settings: Settings) -> None:
    """Say which database a command uses, before it opens (and maybe creates) it."""
    _STDOUT.info(f"{definition.name}: database {describe_database(settings.database_url)}")


def _serve(definition: ServiceDefinition, args: argparse.Namespace) -> int:
    settings = _settings(definition, args)
    _announce_database(definition, settings)
    if armed := failpoints.armed():  # only a test launcher arms them
        _LOGGER.warning("failpoints armed: %s", ", ".join(armed))

    def announce(line: str) -> None:
        _STDOUT.info(line)
        if settings.dev and line.startswith("listening on "):
            port = int(line.rsplit(":", 1)[1])
            _STDOUT.info(_dev_banner(definition, settings, port))

    if settings.workers > 1:
        return serve_workers(definition, settings, announce=announce)
    return serve(definition, settings, announce=announce)


def _migrate(definition: ServiceDefinition, args: argparse.Namespace) -> int:
    settings = _settings(definition, args, require_auth=False)
    _announce_database(definition, settings)
    close_store(open_store(definition, settings))
    _STDOUT.info(f"{definition.name}: migrations applied")
    return 0


def _token(definition: ServiceDefinition, args: argparse.Namespace) -> int:
    settings = _settings(definition, args, require_auth=False)
    if not settings.auth.secret:
        raise ConfigError("token needs AUTH_JWT_SECRET (the HS256 secret the service verifies)")
    if not valid_principal(args.sub):
        raise ConfigError(f"--sub {args.sub!r}: {PRINCIPAL_RULE}")
    permissions = args.permission or service_permissions(definition)
    print(mint_token(settings.auth, args.sub, permissions, ttl_seconds=args.ttl))
    return 0


def _health(definition: ServiceDefinition, args: argparse.Namespace) -> int:
    result = check_health(args.address, args.service, args.timeout)
    print(f"{definition.name}: {result.line}", file=sys.stdout if result.healthy else sys.stderr)
    return 0 if result.healthy else 1


def positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return seconds


def _command(definition: ServiceDefinition, name: str, args: argparse.Namespace) -> int:
    settings = _settings(definition, args, require_auth=False)
    _announce_database(definition, settings)
    database = open_store(definition, settings)
    try:
        return definition.commands[name].run(args)
    finally:
        close_store(database)


def _duration_text(seconds: float) -> str:
    if seconds and seconds % DAY == 0:
        return f"{seconds / DAY:g}d"
    return f"{seconds / 3600:g}h" if seconds and seconds % 3600 == 0 else f"{seconds:g}s"


def build_parser(definition: ServiceDefinition) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=definition.name)
    commands = parser.add_subparsers(dest="command", required=True)
    prefix = definition.env_prefix

    def database_flag(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--database-url",
            help=f"sqlite:///path or postgresql://user@host:port/db (env {prefix}_DATABASE_URL)",
        )
        sub.add_argument(
            "--log-format",
            help=f"{' or '.join(LOG_FORMATS)}: log lines as text or as JSON objects "
            f"(env {prefix}_LOG_FORMAT, text)",
        )

    serve_cmd = commands.add_parser("serve", help="run the gRPC server")
    serve_cmd.add_argument("--host", help=f"address to bind (env {prefix}_HOST, 127.0.0.1)")
    serve_cmd.add_argument(
        "--port", help=f"port, 0 for any (env {prefix}_PORT, {definition.default_port})"
    )
    database_flag(serve_cmd)
    serve_cmd.add_argument(
        "--dev",
        action="store_true",
        default=None,
        help=f"throwaway secret if none is set, print a token (env {prefix}_DEV)",
    )
    serve_cmd.add_argument(
        "--workers", help=f"processes sharing the port (env {prefix}_WORKERS, 1)"
    )
    serve_cmd.add_argument(
        "--grace-period",
        help=f"seconds in-flight calls get at shutdown (env {prefix}_GRACE_PERIOD, 10)",
    )
    serve_cmd.add_argument(
        "--metrics-port",
        help=f"serve Prometheus /metrics on --host at this port, 0 for any "
        f"(env {prefix}_METRICS_PORT; off when unset)",
    )
    for name in definition.lifetimes:
        flag = name.replace("_", "-")
        serve_cmd.add_argument(
            f"--{flag}",
            help=f"{LIFETIMES[name].help} (env {prefix}_{name.upper()}, "
            f"{_duration_text(getattr(Settings, name))}); seconds, or 90s, 15m, 24h, 30d",
        )
    for option in definition.options:
        serve_cmd.add_argument(
            option.flag,
            help=f"{option.help} (env {prefix}_{option.name.upper()}, {option.default})",
        )
    serve_cmd.set_defaults(handler=_serve)

    migrate_cmd = commands.add_parser("migrate", help="apply pending migrations and exit")
    database_flag(migrate_cmd)
    migrate_cmd.set_defaults(handler=_migrate)

    token_cmd = commands.add_parser("token", help="mint a token with AUTH_JWT_SECRET")
    token_cmd.add_argument("--sub", required=True, help="principal, e.g. user:john.doe")
    token_cmd.add_argument(
        "--permission",
        action="append",
        help="a permission to grant (repeatable; default: all of this service's)",
    )
    token_cmd.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token_cmd.set_defaults(handler=_token)

    health_cmd = commands.add_parser(
        "health", help="exit 0 if the server at --address answers SERVING (grpc.health.v1)"
    )
    health_cmd.add_argument(
        "--address",
        required=True,
        help=f"HOST:PORT of the server to ask, e.g. 127.0.0.1:{definition.default_port}",
    )
    health_cmd.add_argument(
        "--service",
        default="",
        help=f"a service's full name, e.g. {definition.service_names[0]} (default: the server)",
    )
    health_cmd.add_argument(
        "--timeout", type=positive_seconds, default=3.0, help="seconds to wait (default 3)"
    )
    health_cmd.set_defaults(handler=_health)

    for name, command in definition.commands.items():
        sub = commands.add_parser(name, help=command.help)
        database_flag(sub)
        command.add_arguments(sub)
        sub.set_defaults(handler=lambda d, a, name=name: _command(d, name, a))
    return parser


def configure_logging(log_format: str = "text") -> None:
    """The log handlers of every service process: the CLI's, and each --workers process's.

    Logs go to stderr. In json every line the process writes is a JSON object: its stdout
    lines too, warnings, and exceptions nothing caught.
    """
    root = logging.getLogger()
    # No line shows where it was logged from, nor the thread or process: skip working them
    # out for every record (the logging HOWTO's "Optimization"). Finding the caller walks
    # the stack: the access line every call logs cost ~21 µs with them, ~15 µs without.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for logger, handler in _INSTALLED.items():  # the format chosen before: replaced
        logger.removeHandler(handler)
    _INSTALLED.clear()
    if not root.handlers:  # as logging.basicConfig: a host's own handlers are left alone
        _install(root, log_handler(sys.stderr, log_format))
        root.setLevel(logging.INFO)
    for logger, stream in ((_STDOUT, sys.stdout), (_STDERR, sys.stderr)):
        # Not redacted: the CLI's own words, among them the token --dev prints on purpose.
        _install(logger, log_handler(stream, log_format, "%(message)s", redact=False))
        logger.setLevel(logging.INFO)
        logger.propagate = False
    if log_format == "json":
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = lambda hook: _log_uncaught(
            hook.exc_type, hook.exc_value, hook.exc_traceback
        )


_INSTALLED: dict[logging.Logger, logging.Handler] = {}


def _install(logger: logging.Logger, handler: logging.Handler) -> None:
    logger.addHandler(handler)
    _INSTALLED[logger] = handler


def _log_uncaught(
    kind: type[BaseException], error: BaseException | None, trace: TracebackType | None
) -> None:
    if error is None:  # threading's hook may carry no exception object
        error = kind()
    _LOGGER.critical("uncaught exception", exc_info=(kind, error, trace))


def main(definition: ServiceDefinition, argv: Sequence[str] | None = None) -> None:
    configure_logging()  # text until the settings say otherwise
    args = build_parser(definition).parse_args(argv)
    try:
        sys.exit(args.handler(definition, args))
    except ConfigError as exc:
        _STDERR.error(f"{definition.name}: error: {exc}")
        sys.exit(2)
    except peewee.OperationalError as exc:  # refused, unreachable, or a file it cannot open
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _STDERR.error(f"{definition.name}: error: cannot use the database: {first_line}")
        sys.exit(1)
