"""ZeroMQ socket helpers: loopback by default, linger 0, bounded queues, no blocking forever.

`bind` and `connect` add CURVE (see `farm.security`) when the configuration turns it on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import zmq

if TYPE_CHECKING:
    from farm.security import Curve

LOOPBACK_ADDRESS = "127.0.0.1"
WILDCARDS = {"tcp://0.0.0.0:": "tcp://127.0.0.1:", "tcp://[::]:": "tcp://[::1]:"}


def make_socket(ctx: zmq.Context, kind: int, hwm: int = 1000) -> zmq.Socket:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    return sock


def bind(sock: zmq.Socket, address: str = LOOPBACK_ADDRESS, curve: Curve | None = None) -> str:
    """Bind to a free port on `address` (a CURVE server if `curve`); return the endpoint to connect to.

    A wildcard address (0.0.0.0, ::) gives a loopback endpoint: the farm's processes share the host.
    """
    if curve is not None:
        curve.secure_server(sock)
    host = address
    if ":" in address.strip("[]"):
        sock.ipv6 = True
        host = f"[{address.strip('[]')}]"
    sock.bind_to_random_port(f"tcp://{host}")
    endpoint = sock.last_endpoint.decode()
    for wildcard, local in WILDCARDS.items():
        endpoint = endpoint.replace(wildcard, local)
    return endpoint


def connect(sock: zmq.Socket, endpoint: str, curve: Curve | None = None) -> None:
    """Connect to `endpoint` (a CURVE client if `curve`, checking the server's public key)."""
    if curve is not None:
        curve.secure_client(sock, curve.server_public_key)
    if endpoint.startswith("tcp://["):
        sock.ipv6 = True
    sock.connect(endpoint)
