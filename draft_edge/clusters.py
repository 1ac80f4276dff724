"""Envoy's upstream clusters: one per service, holding every address given for it.

Kept apart from the listener (draft_edge.config) so that how the edge spreads calls over
replicas (load balancing, health checks, retries, limits) changes here alone.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from shared.config import Upstream

CONNECT_TIMEOUT = "2s"
NOWHERE = "nowhere"
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
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [_endpoint(upstream) for upstream in upstreams]}],
        },
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
