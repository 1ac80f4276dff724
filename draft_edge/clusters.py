"""Envoy's upstream clusters: one per service, holding every address given for it (its
replicas), and how a call is spread over them and retried.

Kept apart from the listener (draft_edge.config) so that how the edge treats replicas (load
balancing, health checks, retries, limits) changes here alone.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from shared.config import Upstream

CONNECT_TIMEOUT = "2s"
NOWHERE = "nowhere"
# grpc.health.v1 Check of every replica this often, traffic or not: a replica that drains
# answers NOT_SERVING at once (shared/drain.py) and keeps refusing for at least 1 s (its
# notice), so it is out of the rotation before it closes; one that died fails the check.
HEALTH_INTERVAL = "1s"
HEALTH_TIMEOUT = "1s"
RETRIES = 2  # on other replicas (previous hosts are avoided), within the call's own timeout
# Retried for every RPC: the call never reached a replica, so nothing was changed.
NEVER_SENT = "connect-failure,refused-stream,reset-before-request"
# Retried for reads (GET bindings) only: a replica that refused (UNAVAILABLE: draining, or
# its database is unreachable) or whose connection broke mid-call. A write is not retried on
# them: its COMMIT may have happened (the services' UNAVAILABLE says so; a client retries it
# with the same idempotency key, which the edge cannot see inside the message).
READ_FAILURES = f"{NEVER_SENT},unavailable,reset"
# Retries in flight at once, per cluster: Envoy's default (3) fails calls when a replica with
# more than three calls dies. When one replica of two fails, the calls it held are half of
# those in flight: each may retry; past that, retries would only add load to the survivors.
RETRY_BUDGET_PERCENT = 50.0
MIN_RETRY_CONCURRENCY = 32  # the calls one service process admits at once (shared.lanes)
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def cluster(name: str, upstreams: tuple[Upstream, ...]) -> dict[str, Any]:
    """A cluster speaking gRPC (HTTP/2 without TLS) to the service at upstreams."""
    literal = all(_is_ip(upstream.host) for upstream in upstreams)
    return {
        "name": name,
        # Names (localhost, a compose service) are resolved, and re-resolved, by Envoy.
        "type": "STATIC" if literal else "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": CONNECT_TIMEOUT,
        # The replica with fewer calls in flight (of two picked at random): a slow call does
        # not pile more onto its replica, as round-robin would.
        "lb_policy": "LEAST_REQUEST",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [_endpoint(upstream) for upstream in upstreams]}],
        },
        "circuit_breakers": {
            "thresholds": [
                {
                    "retry_budget": {
                        "budget_percent": {"value": RETRY_BUDGET_PERCENT},
                        "min_retry_concurrency": MIN_RETRY_CONCURRENCY,
                    }
                }
            ]
        },
        # A replica the edge cannot reach (refused, reset) leaves the rotation at once, not at
        # the next health check: least-request would otherwise favour it, holding no calls.
        "outlier_detection": {
            "split_external_local_origin_errors": True,
            "consecutive_local_origin_failure": 1,
            "enforcing_consecutive_local_origin_failure": 100,
            "consecutive_5xx": 1000,  # the services' own errors are answers, not a sick replica
            "enforcing_consecutive_5xx": 0,
            "interval": HEALTH_INTERVAL,
            "base_ejection_time": "5s",
            "max_ejection_percent": 50,
        },
        "health_checks": [
            {
                "timeout": HEALTH_TIMEOUT,
                "interval": HEALTH_INTERVAL,
                "no_traffic_interval": HEALTH_INTERVAL,
                "unhealthy_threshold": 1,
                "healthy_threshold": 1,
                "grpc_health_check": {},  # the server's overall status ("" service)
            }
        ],
        "typed_extension_protocol_options": {
            _HTTP_OPTIONS: {
                "@type": f"type.googleapis.com/{_HTTP_OPTIONS}",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
    }


def pipe_cluster(name: str, path: str) -> dict[str, Any]:
    """A plain HTTP/1.1 cluster to a Unix socket: Envoy's own admin interface."""
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": CONNECT_TIMEOUT,
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"pipe": {"path": path}}}}]}],
        },
    }


def retry_policy(read: bool) -> dict[str, Any]:
    """How a call that failed on one replica is tried on another (see READ_FAILURES)."""
    previous = "envoy.retry_host_predicates.previous_hosts"
    return {
        "retry_on": READ_FAILURES if read else NEVER_SENT,
        "num_retries": RETRIES,
        "retry_host_predicate": [
            {
                "name": previous,
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts."
                    "v3.PreviousHostsPredicate"
                },
            }
        ],
        "host_selection_retry_max_attempts": 10,
        "retry_back_off": {"base_interval": "0.025s", "max_interval": "0.25s"},
    }


def nowhere() -> dict[str, Any]:
    """A cluster with no address: a route that must forward, but never does, names it."""
    return {
        "name": NOWHERE,
        "type": "STATIC",
        "connect_timeout": CONNECT_TIMEOUT,
        "load_assignment": {"cluster_name": NOWHERE, "endpoints": []},
    }


def _endpoint(upstream: Upstream) -> dict[str, Any]:
    address = {"address": upstream.host, "port_value": upstream.port}
    return {"endpoint": {"address": {"socket_address": address}}}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
