"""Reading a worker's STATS counters (sent to the collector every second): one place that
knows where the per-server figures sit, for the metrics and the live view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def per_server_models(counters: Mapping[str, Any], default_server: str) -> dict[str, Mapping[str, Mapping]]:
    """{server: {model: counters}} from a worker's STATS: the pool's per-server figures
    (`servers` -> address -> `models`) where it reports them, else every model's counters
    on the farm's one server."""
    servers = counters.get("servers")
    if isinstance(servers, Mapping):
        return {address: (c.get("models") or {}) if isinstance(c, Mapping) else {} for address, c in servers.items()}
    return {default_server: counters.get("models") or {}}
