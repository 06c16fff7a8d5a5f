"""ZeroMQ socket helpers: loopback by default, linger 0, bounded queues, no blocking forever.

`bind` and `connect` add CURVE (see `farm.security`) when the configuration turns it on.
`send_parts` and `recv_parts` are send_multipart and recv_multipart without pyzmq's
per-part overhead, for the paths every fragment and every event takes.
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


# pyzmq's send_multipart computes `zmq.SNDMORE | flags` for every part but the last; SNDMORE
# is an enum.Flag and that `|` costs about a microsecond and a quarter in CPython, several
# microseconds per message: more than the send itself on the builder's hot path. Its
# recv_multipart asks getsockopt(RCVMORE) after every part, and pyzmq turns the option into
# an enum on each call (about a microsecond). The helpers below send with plain-int flags
# (the values are libzmq's ABI) and read "more parts follow" from each received zmq.Frame.
_SNDMORE = int(zmq.SNDMORE)


def send_parts(sock: zmq.Socket, parts: list, flags: int = 0, copy: bool = True) -> None:
    """`sock.send_multipart(parts, flags, copy)` without the per-part flag arithmetic.

    Parts are bytes, zmq.Frame or buffers, as for send_multipart. Every part is checked
    before the first is sent: a part of another type raises TypeError with nothing sent,
    never half a message (whose missing end would join the socket's next message).
    """
    for part in parts:
        if type(part) is not bytes and not isinstance(part, zmq.Frame):
            memoryview(part)  # TypeError unless it is a buffer
    send, flags = sock.send, int(flags)
    more = flags | _SNDMORE
    for part in parts[:-1]:
        send(part, more, copy)
    send(parts[-1], flags, copy)


def recv_parts(sock: zmq.Socket, flags: int = 0, copy: bool = True) -> list:
    """`sock.recv_multipart(flags, copy)`: a list of bytes (`copy`) or of zmq.Frame, the
    same message, without a getsockopt per part."""
    recv, flags = sock.recv, int(flags)
    frame = recv(flags, False)
    parts = [frame.bytes if copy else frame]
    while frame.more:
        frame = recv(flags, False)
        parts.append(frame.bytes if copy else frame)
    return parts
