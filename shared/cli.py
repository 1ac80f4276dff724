"""The command line both services share: serve, migrate, token, and a service's own commands."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence

import peewee
from google.protobuf import descriptor_pool

from shared.auth import PRINCIPAL_RULE, mint_token, valid_principal
from shared.config import ConfigError, Settings, load_settings
from shared.db import describe_database
from shared.server import close_store, open_store, serve, serve_workers
from shared.service import ServiceDefinition
from shared.v1 import auth_pb2


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


def _settings(definition: ServiceDefinition, args: argparse.Namespace, **kw) -> Settings:
    return load_settings(
        definition.name, definition.env_prefix, definition.default_port, vars(args), **kw
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
            f"  buf curl --protocol grpc --http2-prior-knowledge "
            f"-H {shlex.quote('authorization: Bearer ' + token)} -d '{{}}' {url}",
        ]
    )


def _announce_database(definition: ServiceDefinition, settings: Settings) -> None:
    """Say which database a command uses, before it opens (and maybe creates) it."""
    print(f"{definition.name}: database {describe_database(settings.database_url)}", flush=True)


def _serve(definition: ServiceDefinition, args: argparse.Namespace) -> int:
    settings = _settings(definition, args)
    _announce_database(definition, settings)

    def announce(line: str) -> None:
        print(line, flush=True)
        if settings.dev and line.startswith("listening on "):
            port = int(line.rsplit(":", 1)[1])
            print(_dev_banner(definition, settings, port), flush=True)

    if settings.workers > 1:
        return serve_workers(definition, settings, announce=announce)
    return serve(definition, settings, announce=announce)


def _migrate(definition: ServiceDefinition, args: argparse.Namespace) -> int:
    settings = _settings(definition, args, require_auth=False)
    _announce_database(definition, settings)
    close_store(open_store(definition, settings))
    print(f"{definition.name}: migrations applied")
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


def _command(definition: ServiceDefinition, name: str, args: argparse.Namespace) -> int:
    settings = _settings(definition, args, require_auth=False)
    _announce_database(definition, settings)
    database = open_store(definition, settings)
    try:
        return definition.commands[name].run(args)
    finally:
        close_store(database)


def build_parser(definition: ServiceDefinition) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=definition.name)
    commands = parser.add_subparsers(dest="command", required=True)
    prefix = definition.env_prefix

    def database_flag(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--database-url",
            help=f"sqlite:///path or postgresql://user@host:port/db (env {prefix}_DATABASE_URL)",
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

    for name, command in definition.commands.items():
        sub = commands.add_parser(name, help=command.help)
        database_flag(sub)
        command.add_arguments(sub)
        sub.set_defaults(handler=lambda d, a, name=name: _command(d, name, a))
    return parser


def configure_logging() -> None:
    """The log handler of every service process: the CLI's, and each --workers process's."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def main(definition: ServiceDefinition, argv: Sequence[str] | None = None) -> None:
    configure_logging()
    args = build_parser(definition).parse_args(argv)
    try:
        sys.exit(args.handler(definition, args))
    except ConfigError as exc:
        print(f"{definition.name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except peewee.OperationalError as exc:  # refused, unreachable, or a file it cannot open
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"{definition.name}: error: cannot use the database: {first_line}", file=sys.stderr)
        sys.exit(1)
