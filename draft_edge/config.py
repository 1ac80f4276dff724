"""Envoy's configuration for the edge, as a Python dict written to JSON.

One listener serves REST/JSON (the gRPC-JSON transcoder, at each RPC's google.api.http path),
gRPC-Web (browsers) and native gRPC on the same port; each RPC is routed by its gRPC path to
its service's cluster (draft_edge.clusters). Everything is derived from the descriptor set
(draft_edge.descriptors), so a new RPC or service is served without a change here.
"""

from __future__ import annotations

from typing import Any

from draft_edge import clusters, descriptors, limits
from shared.config import EdgeSettings

# A JSON response is buffered whole by the transcoder: a list page holds at most 2 MiB of
# items (the services' size budget), larger in JSON.
MAX_JSON_RESPONSE_BYTES = 16 * 1024 * 1024
# What a browser may send and read across origins: gRPC-Web's headers, the token, tracing.
CORS_ALLOW_HEADERS = (
    "authorization, content-type, x-grpc-web, x-user-agent, grpc-timeout, traceparent, tracestate"
)
CORS_EXPOSE_HEADERS = "grpc-status, grpc-message, grpc-status-details-bin"
CORS_MAX_AGE_SECONDS = "600"
ADMIN_CLUSTER = "envoy_admin"
# Where the health listener answers probes (Envoy Gateway's path for the same filter).
READY_PATH = "/ready"
# Open client connections the edge holds at once, all listeners together; past it Envoy
# refuses new ones (each costs buffers; the services admit 32 calls each anyway).
MAX_CONNECTIONS = 10_000

# HTTP/2 pings to each client connection: one unanswered for `timeout` closes it, and with it
# the watches it held open (whose routes have no idle timeout).
DOWNSTREAM_KEEPALIVE = {"interval": "30s", "timeout": "10s"}

_TYPES = "type.googleapis.com/envoy.extensions.filters"
# Envoy's own refusals (no such path, a field the request names that the RPC lacks, a body
# too large, no upstream) in the shape the services' errors have: a JSON google.rpc.Status,
# its code the gRPC code of the HTTP status (the inverse of Google's mapping; gRPC clients get
# a grpc-status of Envoy's own making instead).
_LOCAL_REPLY_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 413: 8, 429: 8, 503: 14, 504: 4}
_UNKNOWN = 2


def bootstrap(settings: EdgeSettings, admin_socket: str) -> dict[str, Any]:
    """Envoy's whole configuration. The admin interface listens on admin_socket, a Unix socket
    in a private folder: no client on the network, nor another user of the host, reaches it."""
    listeners = [_edge_listener(settings)]
    upstream = [
        clusters.cluster("cohort", settings.cohort),
        clusters.cluster("report", settings.report),
        clusters.nowhere(),
    ]
    if settings.metrics_port is not None:
        listeners.append(_metrics_listener(settings.host, settings.metrics_port))
        upstream.append(clusters.pipe_cluster(ADMIN_CLUSTER, admin_socket))
    if settings.health_port is not None:
        listeners.append(_health_listener(settings.host, settings.health_port))
    monitor = "envoy.resource_monitors.global_downstream_max_connections"
    return {
        "admin": {"address": {"pipe": {"path": admin_socket, "mode": 0o600}}},
        "static_resources": {"listeners": listeners, "clusters": upstream},
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": monitor,
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.resource_monitors."
                        "downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": MAX_CONNECTIONS,
                    },
                }
            ]
        },
    }


def _edge_listener(settings: EdgeSettings) -> dict[str, Any]:
    http_filters = [
        _filter("cors", "cors.v3.Cors", {}),
        _filter("grpc_web", "grpc_web.v3.GrpcWeb", {}),
        *limits.rate_limit_filters(settings.rate_limit),
        _filter(
            "grpc_json_transcoder",
            "grpc_json_transcoder.v3.GrpcJsonTranscoder",
            transcoder(settings.max_request_bytes),
        ),
        _filter("router", "router.v3.Router", {}),
    ]
    virtual_host: dict[str, Any] = {
        "name": "services",
        "domains": ["*"],
        "routes": [
            *(route(rpc, settings.call_timeout) for rpc in descriptors.rpcs()),
            *_other_paths(),
        ],
    }
    if settings.cors_origins:
        virtual_host["typed_per_filter_config"] = {
            "envoy.filters.http.cors": cors_policy(settings.cors_origins)
        }
    return _listener(
        "edge",
        settings.host,
        settings.port,
        {
            "stat_prefix": "edge",
            "codec_type": "AUTO",  # HTTP/1.1 (REST, gRPC-Web) and HTTP/2 (gRPC) on one port
            # The edge is the first proxy: the peer is the client (rate limits key on it), and
            # it is appended to x-forwarded-for for the services.
            "use_remote_address": True,
            "http2_protocol_options": {"connection_keepalive": DOWNSTREAM_KEEPALIVE},
            "route_config": {"name": "services", "virtual_hosts": [virtual_host]},
            "http_filters": http_filters,
            "local_reply_config": local_replies(),
        },
    )


def transcoder(max_request_bytes: int) -> dict[str, Any]:
    """REST/JSON at every RPC's google.api.http path, in the proto JSON mapping."""
    return {
        "proto_descriptor": str(descriptors.DESCRIPTOR_SET),
        "services": sorted(descriptors.services()),
        # camelCase names, and fields at their defaults printed (`created: false`, `0`).
        "print_options": {"always_print_primitive_fields": True},
        # An error as a JSON google.rpc.Status, its details (BadRequest, ErrorInfo) decoded.
        "convert_grpc_status": True,
        # A last segment such as `user:john.doe:sales-dashboard-draft` is an id, not a custom
        # verb: Envoy splits off `:x` as a verb only when some rule registers `:x` (none here;
        # a rule with a custom verb would make ids ending in it unreachable). True would
        # split every such id and match nothing (tests/edge prove the default).
        "match_unregistered_custom_verb": False,
        # Ids may hold any printable character (Report.id's grammar): a client escapes them,
        # and in a single-segment variable (`{id}`, all of ours) the transcoder undoes every
        # escape, `%2F` included, whatever url_unescape_spec says (it governs `{x=**}` only).
        "request_validation_options": {
            "reject_unknown_method": True,
            "reject_unknown_query_parameters": True,
        },
        # A larger JSON body is refused (413, RESOURCE_EXHAUSTED); gRPC bodies are limited by
        # the services (4 MiB).
        "max_request_body_size": max_request_bytes,
        "max_response_body_size": MAX_JSON_RESPONSE_BYTES,
    }


def route(rpc: descriptors.Rpc, timeout_seconds: int) -> dict[str, Any]:
    """The route of one RPC, matched on its gRPC path: what the transcoder and the gRPC-Web
    filter turn a request into, and what a gRPC client sends. A unary call may take
    timeout_seconds (a gRPC client's shorter deadline, grpc-timeout, wins)."""
    read = any(binding.verb == "GET" for binding in rpc.http)  # safe, as HTTP says
    action: dict[str, Any] = {"cluster": rpc.upstream, "retry_policy": clusters.retry_policy(read)}
    if rpc.server_streaming:
        action["timeout"] = "0s"  # a stream lasts as long as its client wants
        # A watch may see no event for hours: Envoy's stream idle timeout (5 min by default)
        # would cut it, so it is off on streams; a vanished client is found by the HTTP/2
        # keep-alive pings instead (DOWNSTREAM_KEEPALIVE), which close its connection.
        action["idle_timeout"] = "0s"
    else:
        limit = f"{timeout_seconds}s"
        action["timeout"] = limit
        # The route's timeout no longer applies once grpc-timeout is honoured (Envoy): the
        # stream's duration is capped as well, header or not.
        action["max_stream_duration"] = {
            "max_stream_duration": limit,
            "grpc_timeout_header_max": limit,
        }
    return {"name": rpc.path, "match": {"path": rpc.path}, "route": action}


def cors_policy(origins: tuple[str, ...]) -> dict[str, Any]:
    return {
        "@type": f"{_TYPES}.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": [{"exact": origin} for origin in origins],
        "allow_methods": "GET, PUT, POST, DELETE, PATCH, OPTIONS",
        "allow_headers": CORS_ALLOW_HEADERS,
        "expose_headers": CORS_EXPOSE_HEADERS,
        "max_age": CORS_MAX_AGE_SECONDS,
    }


def _other_paths() -> list[dict[str, Any]]:
    """Last, the paths no RPC claims. A gRPC call there gets UNIMPLEMENTED. Any other request
    matches the second route only until the transcoder has rewritten it to its RPC's path (or
    refused it, 404): it is the route the CORS filter takes its policy from, and the filter
    needs one that forwards (a direct response has no policy), so it forwards to a cluster
    with no address, which nothing reaches."""
    return [
        {
            "name": "no-such-rpc",
            "match": {"prefix": "/", "grpc": {}},
            "direct_response": {"status": 404, "body": {"inline_string": "no RPC at this path"}},
        },
        {"name": "rest", "match": {"prefix": "/"}, "route": {"cluster": clusters.NOWHERE}},
    ]


def local_replies() -> dict[str, Any]:
    """Envoy's own error replies as JSON google.rpc.Status."""

    def status(code: int) -> dict[str, Any]:
        body = {"code": code, "message": "%LOCAL_REPLY_BODY%"}
        return {"json_format": body, "content_type": "application/json"}

    grpc = {"name": "content-type", "string_match": {"prefix": "application/grpc"}}
    # A transcoded request is gRPC by now too; the transcoder kept its REST path here.
    transcoded = {"name": "x-envoy-original-path", "present_match": True, "invert_match": True}
    mappers = [
        # gRPC and gRPC-Web: grpc-message is the bare text (the code is grpc-status already).
        {
            "filter": {
                "and_filter": {
                    "filters": [{"header_filter": {"header": h}} for h in (grpc, transcoded)]
                }
            },
            "body_format_override": {"text_format_source": {"inline_string": "%LOCAL_REPLY_BODY%"}},
        }
    ]
    mappers += [
        {
            "filter": {
                "status_code_filter": {
                    "comparison": {"op": "EQ", "value": {"default_value": http, "runtime_key": ""}}
                }
            },
            "body_format_override": status(code),
        }
        for http, code in _LOCAL_REPLY_CODES.items()
    ]
    return {"mappers": mappers, "body_format": status(_UNKNOWN)}


def _metrics_listener(host: str, port: int) -> dict[str, Any]:
    """Envoy's statistics for Prometheus, and nothing else of the admin interface."""
    scrape = {"cluster": ADMIN_CLUSTER, "prefix_rewrite": "/stats/prometheus"}
    return _listener(
        "metrics",
        host,
        port,
        {
            "stat_prefix": "metrics",
            "route_config": {
                "name": "metrics",
                "virtual_hosts": [
                    {
                        "name": "metrics",
                        "domains": ["*"],
                        "routes": [
                            {"match": {"path": path, "headers": [_get()]}, "route": scrape}
                            for path in ("/metrics", "/stats/prometheus")
                        ],
                    }
                ],
            },
            "http_filters": [_filter("router", "router.v3.Router", {})],
        },
    )


def _health_listener(host: str, port: int) -> dict[str, Any]:
    """GET /ready for probes, answered by Envoy itself (its health check filter): 200 while it
    serves, 503 once the drain began (draft_edge.admin fails its health check first). Apart
    from the edge's port, as Envoy Gateway and Istio keep theirs: a probe is never rate
    limited, transcoded or refused at the connection limit."""
    ready = {"name": ":path", "string_match": {"exact": READY_PATH}}
    listener = _listener(
        "health",
        host,
        port,
        {
            "stat_prefix": "health",
            # Any other path: no route, 404.
            "route_config": {"name": "health"},
            "http_filters": [
                _filter(
                    "health_check",
                    "health_check.v3.HealthCheck",
                    {"pass_through_mode": False, "headers": [ready]},
                ),
                _filter("router", "router.v3.Router", {}),
            ],
        },
    )
    listener["bypass_overload_manager"] = True
    return listener


def _get() -> dict[str, Any]:
    return {"name": ":method", "string_match": {"exact": "GET"}}


def _listener(name: str, host: str, port: int, manager: dict[str, Any]) -> dict[str, Any]:
    hcm = "network.http_connection_manager.v3.HttpConnectionManager"
    return {
        "name": name,
        "address": {"socket_address": {"address": host, "port_value": port}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {"@type": f"{_TYPES}.{hcm}", **manager},
                    }
                ]
            }
        ],
    }


def _filter(name: str, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": f"envoy.filters.http.{name}",
        "typed_config": {"@type": f"{_TYPES}.http.{kind}", **config},
    }
