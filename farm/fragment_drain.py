"""The event builder's fragment input: receive a batch of fragments and check each.

`drain(sock, limit)` receives up to `limit` fragments (None: every one queued) from a PULL
socket without blocking and checks each as `trigger_sim.wire.check_fragment` does (header,
descriptors, sizes, CRC32 over every byte). It returns one tuple per fragment,

    (ok, frames, nbytes, run_number, l1_id, source_id, l1_time_ns)

with `ok` True and the header's fields when the fragment passed; `ok` False (fields None)
when it is not one the drain vouches for: the caller runs `check_fragment(frames)`, whose
WireFormatError is the verdict. It raises zmq.ZMQError when the socket fails before any
fragment was read. `check=False` receives only (every fragment with ok False): the
benchmark's bare pipe receives that way, as the builder does.

Two implementations, one contract (tests/farm/test_fragment_drain.py runs both):
* compiled, `farm._fragment_drain` (C, built by `scripts/build_fragment_drain.py`, which
  `scripts/setup.sh` runs): the receive (zmq_msg_recv), the small parts' copy into bytes
  (the large ones are kept, see KEEP_MIN_BYTES) and the check, for a whole batch in one
  call: the builder's per-fragment cost that Python could not bring down (BENCHMARKS.md,
  section a). It links neither libzmq nor zlib-ng: it is given the addresses of the libzmq
  functions in the copy pyzmq loaded (the socket handles are that library's) and of
  zlib-ng's crc32 (the checksum `trigger_sim.wire` uses), and declares libzmq's message
  type as zmq.h does (64 bytes, 8-aligned; libzmq 4.x on Linux).
* plain Python (`farm.sockets.recv_parts` + `check_fragment`): where the extension is not
  built, or with TSIM_FRAGMENT_DRAIN=python.
"""

from __future__ import annotations

import ctypes
import os
from types import ModuleType

import zmq

from farm.sockets import recv_parts
from trigger_sim.errors import WireFormatError
from trigger_sim.wire import DEFAULT_LIMITS, check_fragment

_ZMQ_FUNCTIONS = ("zmq_msg_init", "zmq_msg_recv", "zmq_msg_data", "zmq_msg_size", "zmq_msg_more", "zmq_msg_close",
                  "zmq_errno")
BATCH = 64  # fragments per call when the caller sets no limit
API_VERSION = 2  # the extension's (farm/_fragment_drain.c): a build from other sources is not used
# Compiled drain: a part of at least this many bytes is kept as the message libzmq received
# (a read-only buffer, `farm._fragment_drain.Part`), not copied. libzmq's decoder gives a
# part larger than its receive batch (ZMQ_IN_BATCH_SIZE, 8 KiB) a buffer of its own, so
# holding it until the event leaves pins nothing else; smaller parts share that buffer with
# their neighbours and are copied into bytes at once. Side by side (benchmark case a, 6
# pairs each, alternating): builder 36,200 fragments/s keeping the large parts, 31,900
# copying every part, 35,100 keeping every part.
KEEP_MIN_BYTES = 8193


def _loaded_libzmq() -> str | None:
    """The libzmq file this process has mapped (pyzmq's own), from /proc/self/maps."""
    import zmq.backend.cython._zmq  # noqa: F401  (loads libzmq)
    try:
        with open("/proc/self/maps") as f:
            fields = (line.split(None, 5) for line in f if "libzmq" in line)
            paths = {parts[5].strip() for parts in fields if len(parts) == 6}
    except OSError:
        return None
    return paths.pop() if len(paths) == 1 else None


def _address(lib: ctypes.CDLL, name: str) -> int:
    return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value or 0


def _load() -> tuple[ModuleType | None, str]:
    """(the extension, initialised) or (None, why not)."""
    if os.environ.get("TSIM_FRAGMENT_DRAIN", "compiled") == "python":
        return None, "TSIM_FRAGMENT_DRAIN=python"
    try:
        from farm import _fragment_drain
    except ImportError:
        return None, "farm._fragment_drain is not built (scripts/build_fragment_drain.py)"
    if getattr(_fragment_drain, "API_VERSION", None) != API_VERSION:
        return None, "farm._fragment_drain was built from other sources: run scripts/build_fragment_drain.py again"
    try:
        import zlib_ng.zlib_ng as zng
        path = _loaded_libzmq()
        if path is None:
            return None, "pyzmq's libzmq was not found in /proc/self/maps"
        libzmq, libzng = ctypes.CDLL(path), ctypes.CDLL(zng.__file__)
        _fragment_drain.init(*(_address(libzmq, n) for n in _ZMQ_FUNCTIONS), _address(libzng, "zng_crc32_z"))
        if _fragment_drain.crc32(b"123456789") != 0xCBF43926:  # the standard check value of CRC-32 (zlib's)
            return None, "zlib-ng's crc32 gave the wrong check value"
        limits = DEFAULT_LIMITS  # check_fragment's (a fragment beyond them goes to Python's check)
        _fragment_drain.set_limits(limits.max_arrays, limits.max_array_bytes, limits.max_fragment_bytes)
        _fragment_drain.set_keep_min_bytes(KEEP_MIN_BYTES)
    except Exception as err:  # noqa: BLE001 (any failure here means: the plain-Python drain)
        return None, f"the extension could not be initialised: {type(err).__name__}: {err}"
    return _fragment_drain, ""


_ext, why_not_compiled = _load()
compiled = _ext is not None


def drain(sock: zmq.Socket, limit: int | None, check: bool = True) -> list[tuple]:
    """Up to `limit` fragments, checked; see the module's docstring. `check` False: received
    only, each with ok False (the benchmark's bare pipe, which receives as the builder does)."""
    if _ext is not None:
        batch, err = _ext.drain(sock.underlying, -1 if limit is None else limit, check)
        if err and not batch:
            raise zmq.ZMQError(err)
        return batch
    return drain_python(sock, limit, check)


def drain_python(sock: zmq.Socket, limit: int | None, check: bool = True) -> list[tuple]:
    """`drain` in plain Python."""
    out: list[tuple] = []
    while limit is None or len(out) < limit:
        try:
            frames = recv_parts(sock, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            break
        except zmq.ZMQError:
            if out:  # what was read is returned (as the compiled drain does); the next call raises
                break
            raise
        nbytes = sum(map(len, frames))
        if check:
            try:
                out.append((True, frames, nbytes, *check_fragment(frames)))
                continue
            except WireFormatError:
                pass  # not vouched for: the caller's check_fragment gives the verdict
        out.append((False, frames, nbytes, None, None, None, None))
    return out
