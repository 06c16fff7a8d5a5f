"""The builder's fragment input in C (`farm._fastdrain`), when it is built; None otherwise.

`drain(sock, limit)` receives up to `limit` fragments from a PULL socket without blocking
and checks each as `trigger_sim.wire.check_fragment` does (header, sizes, CRC32 over every
byte): a list of (ok, frames, nbytes, run_number, l1_id, source_id, l1_time_ns), frames as
bytes. `ok` False: the C code could not vouch for the fragment, the caller must run
`check_fragment(frames)` (which raises the verdict for a bad one). It raises zmq.ZMQError
when the socket fails before any fragment was read.

The extension links neither libzmq nor zlib-ng: it is given the addresses of the libzmq
functions from the copy pyzmq loaded (the socket handles are that library's) and zlib-ng's
crc32 (the checksum `trigger_sim.wire` uses). Build: `python scripts/build_fastdrain.py`.
Set TSIM_FASTDRAIN=0 to use the pure-Python path (`farm.sockets.recv_parts` + check_fragment).
"""

from __future__ import annotations

import ctypes
import os

import zmq

from trigger_sim.wire import DEFAULT_LIMITS, WireLimits

_ZMQ_FUNCTIONS = ("zmq_msg_init", "zmq_msg_recv", "zmq_msg_data", "zmq_msg_size", "zmq_msg_more", "zmq_msg_close",
                  "zmq_errno")


# Parts as the messages libzmq received (farm._fastdrain.Part: a read-only buffer with len and
# .bytes) rather than copied into bytes: off unless TSIM_FASTDRAIN_ZERO_COPY=1 (experimental: one
# benchmark run with it stalled, not understood yet).
ZERO_COPY = os.environ.get("TSIM_FASTDRAIN_ZERO_COPY", "0") == "1"


def _loaded_libzmq() -> str | None:
    """The libzmq file this process has mapped (pyzmq's own), from /proc/self/maps."""
    import zmq.backend.cython._zmq  # noqa: F401  (loads libzmq)
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split(None, 5)[5].strip() for line in f if "libzmq" in line and len(line.split(None, 5)) == 6}
    except OSError:
        return None
    return paths.pop() if len(paths) == 1 else None


def _address(lib: ctypes.CDLL, name: str) -> int:
    return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value or 0


def _load():
    if os.environ.get("TSIM_FASTDRAIN", "1") == "0":
        return None
    try:
        from farm import _fastdrain
        import zlib_ng.zlib_ng as zng
        path = _loaded_libzmq()
        if path is None:
            return None
        libzmq, libzng = ctypes.CDLL(path), ctypes.CDLL(zng.__file__)
        _fastdrain.init(*(_address(libzmq, n) for n in _ZMQ_FUNCTIONS), _address(libzng, "zng_crc32_z"))
        if _fastdrain.crc32(b"123456789") != 0xCBF43926:  # the standard check value of CRC-32 (zlib's)
            return None
    except (ImportError, OSError, AttributeError, ValueError):
        return None
    _fastdrain.set_zero_copy(ZERO_COPY)
    return _fastdrain


_ext = _load()
available = _ext is not None


def set_limits(limits: WireLimits) -> None:
    if _ext is not None:
        _ext.set_limits(limits.max_arrays, limits.max_array_bytes, limits.max_fragment_bytes)


set_limits(DEFAULT_LIMITS)


def drain(sock: zmq.Socket, limit: int | None) -> list[tuple]:
    """Up to `limit` fragments (None: every one queued), checked; see the module's docstring."""
    batch, err = _ext.drain(sock.underlying, -1 if limit is None else limit)
    if err and not batch:
        raise zmq.ZMQError(err)
    return batch
