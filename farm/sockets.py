"""ZeroMQ socket helpers: loopback by default, linger 0, bounded queues, no blocking forever."""

from __future__ import annotations

import zmq

LOOPBACK = "tcp://127.0.0.1"


def make_socket(ctx: zmq.Context, kind: int, hwm: int = 1000) -> zmq.Socket:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    return sock


def bind_loopback(sock: zmq.Socket) -> str:
    """Bind to a free loopback port; return the endpoint others connect to."""
    port = sock.bind_to_random_port(LOOPBACK)
    return f"{LOOPBACK}:{port}"
