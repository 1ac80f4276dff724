"""What one client may ask of the edge: a rate per client address (Envoy's local rate limit).

Each Envoy process counts on its own (no shared store): with several edges behind a load
balancer, a client gets the rate from each.
"""

from __future__ import annotations

from typing import Any

# Clients counted at once; past it the least recent share one bucket (Envoy's LRU).
MAX_CLIENTS = 10_000
_LOCAL_RATE_LIMIT = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"


def rate_limit_filters(per_second: int | None) -> list[dict[str, Any]]:
    """The filter refusing a client address's calls past per_second (bursts of as many), with
    429 and RESOURCE_EXHAUSTED; none when per_second is None."""
    if per_second is None:
        return []
    everyone = {"numerator": 100}
    per_client = {"max_tokens": per_second, "tokens_per_fill": per_second, "fill_interval": "1s"}
    return [
        {
            "name": "envoy.filters.http.local_ratelimit",
            "typed_config": {
                "@type": f"type.googleapis.com/{_LOCAL_RATE_LIMIT}",
                "stat_prefix": "edge_rate_limit",
                # Only the buckets of the descriptors limit; this one is never reached.
                "token_bucket": {
                    "max_tokens": 1_000_000_000,
                    "tokens_per_fill": 1_000_000_000,
                    "fill_interval": "1s",
                },
                "filter_enabled": {"default_value": everyone},
                "filter_enforced": {"default_value": everyone},
                # A bucket per client address: the entry's value left out is a wildcard.
                "rate_limits": [{"actions": [{"remote_address": {}}]}],
                "descriptors": [
                    {"entries": [{"key": "remote_address"}], "token_bucket": per_client}
                ],
                "max_dynamic_descriptors": MAX_CLIENTS,
                "rate_limited_as_resource_exhausted": True,
            },
        }
    ]
