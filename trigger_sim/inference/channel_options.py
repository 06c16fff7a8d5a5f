"""The options every Triton gRPC client of the farm is made with: TLS (`network.triton_*`)
and, where configured, how soon a client tries to connect again to a server it lost.

gRPC connects again on its own schedule (its connection backoff: 1 s, then x1.6 each with
+-20 % jitter, up to 120 s), and between attempts a call fails at once: a server restarted
in 3 s gets calls again only at the attempt 5.2 s after it was lost
(`scripts/rejoin_after_restart.py`). `inference.reconnect_backoff_ms` > 0 sets gRPC's initial
and maximum backoff to it: attempts every that many ms (with gRPC's jitter)."""

from __future__ import annotations

from typing import Any

import tritonclient.grpc as grpcclient


def reconnect_channel_args(backoff_ms: float) -> list[tuple[str, int]] | None:
    """The channel arguments for a fixed reconnect backoff, with those tritonclient sets by
    itself (message sizes, keepalive: passing any replaces all of them); None for 0, gRPC's own."""
    if backoff_ms <= 0:
        return None
    keepalive = grpcclient.KeepAliveOptions()
    return [("grpc.max_send_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
            ("grpc.max_receive_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
            ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
            ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
            ("grpc.initial_reconnect_backoff_ms", int(backoff_ms)),
            ("grpc.max_reconnect_backoff_ms", int(backoff_ms))]


def client_options(config: Any) -> dict[str, Any]:
    """Keyword arguments for `tritonclient.grpc.InferenceServerClient` from a FarmConfig."""
    options = config.network.triton_client_options()
    args = reconnect_channel_args(config.inference.reconnect_backoff_ms)
    return options if args is None else {**options, "channel_args": args}
