"""`draft-edge` command line: serve, health."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from draft_edge.probe import check_ready
from draft_edge.proxy import drain, run_envoy
from shared.cli import configure_logging, positive_seconds
from shared.config import LOG_FORMATS, ConfigError, load_edge_settings, load_log_format
from shared.server import catch_signals, wait_for_signal

_LOGGER = logging.getLogger(__name__)
# configure_logging's loggers for what a command tells its operator (shared.cli).
_STDOUT = logging.getLogger("shared.cli.stdout")
_STDERR = logging.getLogger("shared.cli.stderr")


def _serve(args: argparse.Namespace) -> int:
    configure_logging(load_log_format("EDGE", vars(args)))
    settings = load_edge_settings(vars(args))
    # Caught before Envoy starts: a signal during its start stops it too, in order.
    stop = catch_signals()
    with run_envoy(settings, stop) as envoy:
        if envoy is None:  # stopped before it was ready
            return 0
        _STDOUT.info(f"listening on {settings.host}:{envoy.ports['edge']}")
        if settings.metrics_port is not None:
            _STDOUT.info(f"metrics on {settings.host}:{envoy.ports['metrics']}")
        if settings.health_port is not None:
            _STDOUT.info(f"health on {settings.host}:{envoy.ports['health']}")
        if not wait_for_signal(stop, ended=lambda: envoy.process.poll() is not None):
            _STDERR.error(f"draft-edge: error: Envoy exited with status {envoy.process.returncode}")
            return 1
        _LOGGER.info("signal received: draining for up to %.1fs", settings.grace_period)
        status = drain(envoy, settings.grace_period)
        if status != 0:
            _STDERR.error(f"draft-edge: error: Envoy exited with status {status} while draining")
            return 1
    return 0


def _health(args: argparse.Namespace) -> int:
    result = check_ready(args.address, args.timeout)
    print(f"draft-edge: {result.line}", file=sys.stdout if result.healthy else sys.stderr)
    return 0 if result.healthy else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="draft-edge",
        description="Envoy in front of cohort-service and report-service: REST/JSON at the "
        "protos' google.api.http paths, gRPC-Web and gRPC, on one port.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run Envoy until SIGTERM/SIGINT")
    serve.add_argument("--host", help="address to bind (env EDGE_HOST, 127.0.0.1)")
    serve.add_argument("--port", help="port, 0 for any (env EDGE_PORT, 8080)")
    for service in ("cohort", "report"):
        serve.add_argument(
            f"--{service}",
            help=f"{service}-service's HOST:PORT, comma-separated for replicas "
            f"(env EDGE_{service.upper()}; required)",
        )
    serve.add_argument(
        "--cors-origins",
        help="browser origins allowed to call, comma-separated, e.g. http://localhost:3000 "
        "(env EDGE_CORS_ORIGINS; none when unset)",
    )
    serve.add_argument(
        "--metrics-port",
        help="serve Envoy's statistics for Prometheus (/metrics) on --host at this port, "
        "0 for any (env EDGE_METRICS_PORT; off when unset)",
    )
    serve.add_argument(
        "--health-port",
        help="answer probes at GET /ready on --host at this port: 200 while serving, 503 "
        "while draining; 0 for any (env EDGE_HEALTH_PORT; off when unset)",
    )
    serve.add_argument(
        "--grace-period",
        help="seconds in-flight requests get on SIGTERM (env EDGE_GRACE_PERIOD, 10)",
    )
    serve.add_argument(
        "--max-request-bytes",
        help="largest REST/JSON request body (env EDGE_MAX_REQUEST_BYTES, 8388608)",
    )
    serve.add_argument(
        "--call-timeout",
        help="seconds a call may take; a gRPC client's shorter deadline wins "
        "(env EDGE_CALL_TIMEOUT, 60)",
    )
    serve.add_argument(
        "--rate-limit",
        help="requests per second per client address, in bursts of as many; past it 429 "
        "(RESOURCE_EXHAUSTED) (env EDGE_RATE_LIMIT; off when unset)",
    )
    serve.add_argument(
        "--log-format",
        help=f"{' or '.join(LOG_FORMATS)}: log lines as text or as JSON objects "
        "(env EDGE_LOG_FORMAT, text)",
    )
    serve.set_defaults(handler=_serve)

    health = commands.add_parser(
        "health", help="exit 0 if the edge's health port at --address answers GET /ready with 200"
    )
    health.add_argument(
        "--address",
        required=True,
        help="HOST:PORT of the edge's --health-port, e.g. 127.0.0.1:8081",
    )
    health.add_argument(
        "--timeout", type=positive_seconds, default=3.0, help="seconds to wait (default 3)"
    )
    health.set_defaults(handler=_health)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    configure_logging()  # text until the settings say otherwise
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.handler(args))
    except ConfigError as exc:
        _STDERR.error(f"draft-edge: error: {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
