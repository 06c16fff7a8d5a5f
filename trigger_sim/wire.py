"""Wire format of fragments: the one place that turns a Fragment into ZeroMQ frames and back.

A fragment travels as a multipart message ``[header, payload_1, ..., payload_n]``: frame 0
is a small header, frames 1..n are the raw array buffers, sent and received without copies.

Header (little-endian), a fixed part of ``HEADER_FIXED_SIZE`` = 40 bytes::

    offset size  field
         0    4  magic        u32 0x31465354 (b"TSF1")
         4    2  version      u16 = 1
         6    2  n_arrays     u16
         8    4  run_number   u32
        12    2  bcid         u16
        14    2  source_id    u16
        16    8  l1_id        u64
        24    8  l1_time_ns   i64
        32    4  crc32        u32
        36    4  reserved     u32, written as 0

followed by ``n_arrays`` descriptors of ``DESCRIPTOR_SIZE`` = 40 bytes each::

    offset size  field
         0   12  name         ASCII [A-Za-z0-9_]{1,12}, NUL-padded
        12    1  dtype code   u8, see DTYPE_CODES
        13    1  ndim         u8, 1..3
        14    2  padding      written as 0
        16   12  shape        3 x u32, unused dimensions 0
        28    4  padding      written as 0
        32    8  nbytes       u64 = prod(shape) * itemsize

crc32 is zlib.crc32 over the whole header with the crc32 field zeroed, continued over each
payload frame in order, so every byte of the message is covered: any single corrupted
byte is detected. Sizes are checked against `WireLimits` before any payload is touched.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

try:  # zlib-ng's crc32 is the same checksum as zlib's, about 15x faster on 16 kB (carry-less multiply)
    from zlib_ng.zlib_ng import crc32
except ImportError:  # pragma: no cover - zlib-ng is a dependency; the plain zlib gives the same values
    from zlib import crc32

from trigger_sim.errors import (
    AbsurdSize,
    BadMagic,
    ChecksumMismatch,
    MalformedDescriptor,
    TruncatedFragment,
    UnsupportedVersion,
    WireFormatError,
)
from trigger_sim.event import Fragment, FragmentHeader

MAGIC = 0x31465354  # b"TSF1" read as a little-endian u32
VERSION = 1
MAX_NDIM = 3
MAX_NAME_LEN = 12

_FIXED = struct.Struct("<IHHIHHQqII")
_DESCRIPTOR = struct.Struct("<12sBB2x3I4xQ")
HEADER_FIXED_SIZE = _FIXED.size  # 40
DESCRIPTOR_SIZE = _DESCRIPTOR.size  # 40
_CRC_OFFSET = 32
_CRC_END = _CRC_OFFSET + 4
_ZERO_CRC = bytes(4)

# dtype.str -> wire code; little-endian only (1-byte types have no byte order, "|").
DTYPE_CODES: dict[str, int] = {
    "|u1": 1,
    "|i1": 2,
    "<u2": 3,
    "<i2": 4,
    "<u4": 5,
    "<i4": 6,
    "<u8": 7,
    "<i8": 8,
    "<f4": 9,
    "<f8": 10,
}
_CODE_DTYPES: dict[int, np.dtype] = {code: np.dtype(s) for s, code in DTYPE_CODES.items()}

_NAME_RE = re.compile(r"[A-Za-z0-9_]{1,12}")
_U32_MAX = 2**32 - 1

# Storage container (encode_to_bytes): u64 n_frames, then per frame u64 length, the bytes
# and zero padding to a multiple of 8, so every frame starts 8-byte aligned.
_U64 = struct.Struct("<Q")
_ALIGN = 8

MiB = 1024 * 1024

# A frame: bytes, bytearray, memoryview, a C-contiguous numpy array, or a zmq.Frame; anything
# with the buffer protocol or a `.buffer` attribute.
FrameLike = Any


@dataclass(frozen=True)
class WireLimits:
    """Upper bounds a decoder accepts, checked before anything is allocated or read."""

    max_arrays: int = 16
    max_array_bytes: int = 64 * MiB
    max_fragment_bytes: int = 256 * MiB


DEFAULT_LIMITS = WireLimits()


def _as_buffer(frame: FrameLike) -> memoryview:
    """Flat byte view of a frame: bytes, bytearray, memoryview, numpy array or zmq.Frame."""
    try:
        view = memoryview(frame)
    except TypeError:
        buffer = getattr(frame, "buffer", None)
        if buffer is None:
            raise TypeError(
                f"frame of type {type(frame).__name__} exposes no buffer"
            ) from None
        view = memoryview(buffer)
    if view.ndim == 1 and view.format == "B":
        return view
    if view.nbytes == 0:
        return memoryview(b"")
    return view.cast("B")  # TypeError for non-contiguous buffers: a caller bug


def _check_frames_arg(frames: Any) -> None:
    if isinstance(frames, (bytes, bytearray, memoryview)):
        raise TypeError(
            "frames must be a sequence of frames, not one byte string; "
            "use decode_from_bytes for the storage format"
        )


def _array_buffer(name: str, array: np.ndarray) -> tuple[bytes, memoryview]:
    """Descriptor bytes and a zero-copy byte view of one array."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise MalformedDescriptor(
            f"array name {name!r} is invalid: use 1..{MAX_NAME_LEN} characters of [A-Za-z0-9_]"
        )
    array = np.asarray(array)
    code = DTYPE_CODES.get(array.dtype.str)
    if code is None:
        raise MalformedDescriptor(
            f"array {name!r} has dtype {array.dtype.str!r}, not one of the wire dtypes "
            f"{sorted(DTYPE_CODES)} (little-endian only)"
        )
    if not 1 <= array.ndim <= MAX_NDIM:
        raise MalformedDescriptor(
            f"array {name!r} has {array.ndim} dimensions; the wire format carries 1..{MAX_NDIM}"
        )
    if any(d > _U32_MAX for d in array.shape):
        raise MalformedDescriptor(f"array {name!r} shape {array.shape} has a dimension >= 2**32")
    array = np.ascontiguousarray(array)  # no copy when already C-contiguous
    shape = tuple(array.shape) + (0,) * (MAX_NDIM - array.ndim)
    descriptor = _DESCRIPTOR.pack(
        name.encode("ascii"), code, array.ndim, *shape, array.nbytes
    )
    return descriptor, memoryview(array.reshape(-1).view(np.uint8))


def encode_fragment(fragment: Fragment) -> list[bytes | memoryview]:
    """Frames ``[header, buf_1, ..., buf_n]`` for ``socket.send_multipart(frames, copy=False)``.

    Payload frames are memoryviews over the arrays themselves (copied only when an array
    is not C-contiguous), so the arrays must not be modified until the send completes.
    """
    h = fragment.header
    if len(fragment.arrays) > 0xFFFF:
        raise MalformedDescriptor(f"{len(fragment.arrays)} arrays do not fit the u16 count")
    descriptors: list[bytes] = []
    payloads: list[memoryview] = []
    for name, array in fragment.arrays.items():
        descriptor, payload = _array_buffer(name, array)
        descriptors.append(descriptor)
        payloads.append(payload)
    try:
        fixed = _FIXED.pack(
            MAGIC, VERSION, len(payloads), h.run_number, h.bcid, h.source_id,
            h.l1_id, h.l1_time_ns, 0, 0,
        )
    except struct.error as exc:
        raise ValueError(
            f"fragment header {h} out of range (run_number u32, bcid u16, source_id u16, "
            f"l1_id u64, l1_time_ns i64): {exc}"
        ) from None
    header = bytearray(fixed)
    for descriptor in descriptors:
        header += descriptor
    crc = crc32(header)
    for payload in payloads:
        crc = crc32(payload, crc)
    struct.pack_into("<I", header, _CRC_OFFSET, crc)
    return [bytes(header), *payloads]


def _parse_fixed(header: memoryview) -> tuple[FragmentHeader, int, int]:
    """Fixed part of a header: (FragmentHeader, n_arrays, crc32); checks magic and version."""
    if len(header) < HEADER_FIXED_SIZE:
        raise TruncatedFragment(
            f"header frame is {len(header)} bytes, shorter than the {HEADER_FIXED_SIZE}-byte "
            "fixed header"
        )
    (magic, version, n_arrays, run_number, bcid, source_id, l1_id, l1_time_ns, crc,
     _reserved) = _FIXED.unpack_from(header, 0)
    if magic != MAGIC:
        raise BadMagic(
            f"bad magic 0x{magic:08x} (expected 0x{MAGIC:08x} 'TSF1'): "
            "not a trigger-sim fragment"
        )
    if version != VERSION:
        raise UnsupportedVersion(
            f"wire-format version {version} is not supported (this build reads version "
            f"{VERSION})"
        )
    fragment_header = FragmentHeader(
        run_number=run_number, l1_id=l1_id, bcid=bcid, source_id=source_id,
        l1_time_ns=l1_time_ns,
    )
    return fragment_header, n_arrays, crc


def peek_header(frame0: FrameLike) -> FragmentHeader:
    """Header fields of a fragment from its first frame only, for cheap routing.

    Checks length, magic and version but not the CRC nor the descriptors: the worker checks
    those when it calls `decode_fragment` on the full message.
    """
    return _parse_fixed(_as_buffer(frame0))[0]


def _parse_descriptor(
    header: memoryview, index: int
) -> tuple[str, np.dtype, tuple[int, ...], int]:
    raw_name, code, ndim, d0, d1, d2, nbytes = _DESCRIPTOR.unpack_from(
        header, HEADER_FIXED_SIZE + index * DESCRIPTOR_SIZE
    )
    name = raw_name.rstrip(b"\0").decode("latin-1")
    if not _NAME_RE.fullmatch(name):
        raise MalformedDescriptor(
            f"descriptor {index}: array name {raw_name!r} is not 1..{MAX_NAME_LEN} "
            "characters of [A-Za-z0-9_], NUL-padded"
        )
    dtype = _CODE_DTYPES.get(code)
    if dtype is None:
        raise MalformedDescriptor(f"descriptor {index} ({name}): unknown dtype code {code}")
    if not 1 <= ndim <= MAX_NDIM:
        raise MalformedDescriptor(
            f"descriptor {index} ({name}): ndim {ndim} is out of range 1..{MAX_NDIM}"
        )
    dims = (d0, d1, d2)
    if any(dims[ndim:]):
        raise MalformedDescriptor(
            f"descriptor {index} ({name}): unused dimensions {dims[ndim:]} are not zero"
        )
    shape = dims[:ndim]
    expected = dtype.itemsize
    for d in shape:
        expected *= d
    if nbytes != expected:
        raise MalformedDescriptor(
            f"descriptor {index} ({name}): nbytes {nbytes} != prod{shape} * "
            f"{dtype.itemsize} = {expected}"
        )
    return name, dtype, shape, nbytes


def decode_fragment(frames: Sequence[FrameLike], limits: WireLimits = DEFAULT_LIMITS) -> Fragment:
    """Fragment from its frames, with arrays as zero-copy read-only views over the frames.

    Raises a `WireFormatError` subclass, and nothing else, for any malformed bytes; sizes are
    checked against `limits` before payloads are read, and nothing is allocated from them.
    """
    _check_frames_arg(frames)
    if len(frames) == 0:
        raise TruncatedFragment("no frames: a fragment has at least a header frame")
    header = _as_buffer(frames[0])
    fragment_header, n_arrays, crc_expected = _parse_fixed(header)
    if n_arrays > limits.max_arrays:
        raise AbsurdSize(f"header declares {n_arrays} arrays, limit is {limits.max_arrays}")
    expected_len = HEADER_FIXED_SIZE + n_arrays * DESCRIPTOR_SIZE
    if len(header) < expected_len:
        raise TruncatedFragment(
            f"header frame is {len(header)} bytes, {n_arrays} arrays need {expected_len}"
        )
    if len(header) > expected_len:
        raise MalformedDescriptor(
            f"header frame is {len(header)} bytes, {n_arrays} arrays need only {expected_len}"
        )
    if len(frames) - 1 != n_arrays:
        raise TruncatedFragment(
            f"{len(frames) - 1} payload frames for {n_arrays} arrays declared in the header"
        )

    payloads = [_as_buffer(f) for f in frames[1:]]
    descriptors = [_parse_descriptor(header, i) for i in range(n_arrays)]
    names = [d[0] for d in descriptors]
    if len(set(names)) != len(names):
        raise MalformedDescriptor(f"duplicate array names in {names}")
    total_bytes = 0
    for name, _dtype, shape, nbytes in descriptors:
        if nbytes > limits.max_array_bytes:
            raise AbsurdSize(
                f"array {name} shape {shape} is {nbytes} bytes, limit is "
                f"{limits.max_array_bytes}"
            )
        total_bytes += nbytes
    if total_bytes > limits.max_fragment_bytes:
        raise AbsurdSize(
            f"arrays total {total_bytes} bytes, limit is {limits.max_fragment_bytes}"
        )
    for (name, _dtype, _shape, nbytes), payload in zip(descriptors, payloads):
        if len(payload) != nbytes:
            raise TruncatedFragment(
                f"payload frame of array {name} is {len(payload)} bytes, header says {nbytes}"
            )

    crc = crc32(header[:_CRC_OFFSET])
    crc = crc32(_ZERO_CRC, crc)
    crc = crc32(header[_CRC_END:], crc)
    for payload in payloads:
        crc = crc32(payload, crc)
    if crc != crc_expected:
        raise ChecksumMismatch(
            f"crc32 0x{crc:08x} of the received bytes != 0x{crc_expected:08x} in the header "
            f"(l1_id {fragment_header.l1_id}, source 0x{fragment_header.source_id:04x})"
        )

    arrays: dict[str, np.ndarray] = {}
    for (name, dtype, shape, _nbytes), payload in zip(descriptors, payloads):
        array = np.frombuffer(payload, dtype=dtype).reshape(shape)
        array.flags.writeable = False
        arrays[name] = array
    return Fragment(header=fragment_header, arrays=arrays)


_CHECKED_KINDS: dict[tuple[bytes, int, int], int] = {}  # (raw name, dtype code, ndim) already valid -> itemsize
_MAX_CHECKED_KINDS = 1024


def _descriptors_struct(n_arrays: int) -> struct.Struct:
    """One struct reading all `n_arrays` descriptors of a header at once (cached per count)."""
    st = _DESCRIPTORS.get(n_arrays)
    if st is None:
        st = _DESCRIPTORS[n_arrays] = struct.Struct("<" + "12sBB2x3I4xQ" * n_arrays)
    return st


_DESCRIPTORS: dict[int, struct.Struct] = {}


def check_fragment(frames: Sequence[FrameLike], limits: WireLimits = DEFAULT_LIMITS) -> tuple[int, int, int, int]:
    """(run_number, l1_id, source_id, l1_time_ns) of a fragment that `decode_fragment` accepts.

    Every check of `decode_fragment` (header, descriptors, sizes, CRC over every byte), but
    no arrays are built: for the event builder, which only routes fragments. A fragment that
    fails any check here goes through `decode_fragment` itself, so the error raised (its
    kind and text) is exactly the one `decode_fragment` raises.

    The short way is written for the builder's per-fragment budget (a few microseconds):
    frames that are flat byte buffers (zmq.Frame, bytes) are read and checksummed as they
    are, all descriptors are read with one struct call, and array kinds (name, dtype, ndim)
    already seen valid are looked up instead of parsed.
    """
    if isinstance(frames, (bytes, bytearray, memoryview)) or not frames:
        return _checked_the_long_way(frames, limits)
    try:
        header = memoryview(frames[0])
        header_len = header.nbytes
        flat = header.format == "B" and header.ndim == 1
    except TypeError:  # a frame without the buffer protocol (a `.buffer` attribute only)
        flat = False
    if not flat:
        return _checked_the_long_way(frames, limits)
    n_arrays = (header_len - HEADER_FIXED_SIZE) // DESCRIPTOR_SIZE
    if (header_len < HEADER_FIXED_SIZE or len(frames) != n_arrays + 1 or n_arrays > limits.max_arrays
            or header_len != HEADER_FIXED_SIZE + n_arrays * DESCRIPTOR_SIZE):
        return _checked_the_long_way(frames, limits)
    magic, version, declared, run_number, _bcid, source_id, l1_id, l1_time_ns, crc_expected, _ = _FIXED.unpack_from(header, 0)
    if magic != MAGIC or version != VERSION or declared != n_arrays:
        return _checked_the_long_way(frames, limits)
    crc = crc32(header[_CRC_END:], crc32(_ZERO_CRC, crc32(header[:_CRC_OFFSET])))
    fields = _descriptors_struct(n_arrays).unpack_from(header, HEADER_FIXED_SIZE)
    kinds, max_array = _CHECKED_KINDS, limits.max_array_bytes
    total = 0
    names: list[bytes] = []
    for i in range(n_arrays):
        raw_name, code, ndim, d0, d1, d2, nbytes = fields[7 * i: 7 * i + 7]
        itemsize = kinds.get((raw_name, code, ndim))
        payload = frames[i + 1]
        if type(payload) is not bytes:  # zmq.Frame, memoryview, numpy array: a flat byte view, or the long way
            try:
                payload = memoryview(payload)
            except TypeError:
                return _checked_the_long_way(frames, limits)
            if payload.format != "B" or payload.ndim != 1:
                return _checked_the_long_way(frames, limits)
        if (itemsize is None or raw_name in names or (ndim < 3 and d2) or (ndim < 2 and d1)
                or nbytes != itemsize * d0 * (d1 if ndim > 1 else 1) * (d2 if ndim > 2 else 1)
                or nbytes > max_array or len(payload) != nbytes):
            return _checked_the_long_way(frames, limits)
        names.append(raw_name)
        total += nbytes
        crc = crc32(payload, crc)
    if total > limits.max_fragment_bytes or crc != crc_expected:
        return _checked_the_long_way(frames, limits)
    return run_number, l1_id, source_id, l1_time_ns


def _checked_the_long_way(frames: Sequence[FrameLike], limits: WireLimits) -> tuple[int, int, int, int]:
    """`decode_fragment`'s verdict (it raises for a bad fragment); remembers the array kinds
    (name, dtype, ndim) of a good one so `check_fragment` takes the short way next time."""
    fragment = decode_fragment(frames, limits)
    header = _as_buffer(frames[0])
    if len(_CHECKED_KINDS) < _MAX_CHECKED_KINDS:
        for i in range(len(fragment.arrays)):
            raw_name, code, ndim, *_ = _DESCRIPTOR.unpack_from(header, HEADER_FIXED_SIZE + i * DESCRIPTOR_SIZE)
            _CHECKED_KINDS[(raw_name, code, ndim)] = _CODE_DTYPES[code].itemsize
    h = fragment.header
    return h.run_number, h.l1_id, h.source_id, h.l1_time_ns


def fragment_nbytes(frames: Sequence[FrameLike]) -> int:
    """Total size in bytes of all frames of a message."""
    _check_frames_arg(frames)
    return sum(_as_buffer(f).nbytes for f in frames)


def _padding(nbytes: int) -> int:
    return -nbytes % _ALIGN


def pack_frames(frames: Sequence[FrameLike]) -> bytes:
    """One byte string holding already-encoded frames, for storage (one copy).

    Layout: u64 n_frames; per frame u64 length, the bytes, zero padding to a multiple of 8.
    """
    _check_frames_arg(frames)
    views = [_as_buffer(f) for f in frames]
    parts: list[bytes | memoryview] = [_U64.pack(len(views))]
    for view in views:
        parts.append(_U64.pack(view.nbytes))
        parts.append(view)
        parts.append(bytes(_padding(view.nbytes)))
    return b"".join(parts)


def unpack_frames(data: FrameLike, limits: WireLimits = DEFAULT_LIMITS) -> list[memoryview]:
    """Frames of a `pack_frames` byte string, as zero-copy memoryview slices.

    Padding bytes are ignored (a recording's record CRC covers them).
    """
    buf = _as_buffer(data)
    if len(buf) < _U64.size:
        raise TruncatedFragment(f"stored fragment is {len(buf)} bytes, shorter than its count")
    (n_frames,) = _U64.unpack_from(buf, 0)
    if n_frames > limits.max_arrays + 1:
        raise AbsurdSize(
            f"stored fragment declares {n_frames} frames, limit is {limits.max_arrays + 1}"
        )
    frames: list[memoryview] = []
    offset = _U64.size
    for i in range(n_frames):
        if len(buf) - offset < _U64.size:
            raise TruncatedFragment(f"stored fragment ends before the length of frame {i}")
        (length,) = _U64.unpack_from(buf, offset)
        offset += _U64.size
        end = offset + length + _padding(length)
        if end > len(buf):
            raise TruncatedFragment(
                f"frame {i} declares {length} bytes, only {len(buf) - offset} remain"
            )
        frames.append(buf[offset:offset + length])
        offset = end
    if offset != len(buf):
        raise MalformedDescriptor(
            f"stored fragment has {len(buf) - offset} trailing bytes after {n_frames} frames"
        )
    return frames


def encode_to_bytes(fragment: Fragment) -> bytes:
    """A fragment as one byte string for storage (see `pack_frames`)."""
    return pack_frames(encode_fragment(fragment))


def decode_from_bytes(data: FrameLike, limits: WireLimits = DEFAULT_LIMITS) -> Fragment:
    """Fragment from an `encode_to_bytes` byte string; arrays are views over `data`."""
    return decode_fragment(unpack_frames(data, limits), limits)


__all__ = [
    "DEFAULT_LIMITS",
    "DESCRIPTOR_SIZE",
    "DTYPE_CODES",
    "HEADER_FIXED_SIZE",
    "MAGIC",
    "VERSION",
    "WireFormatError",
    "WireLimits",
    "check_fragment",
    "decode_fragment",
    "decode_from_bytes",
    "encode_fragment",
    "encode_to_bytes",
    "fragment_nbytes",
    "pack_frames",
    "peek_header",
    "unpack_frames",
]
