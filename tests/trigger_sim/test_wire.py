"""Tests of trigger_sim.wire: round trips, corruption detection, limits, zero copy."""

from __future__ import annotations

import math
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

from trigger_sim import wire
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

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DTYPES = [np.dtype(s) for s in wire.DTYPE_CODES]
names = st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True)

headers = st.builds(
    FragmentHeader,
    run_number=st.integers(0, 2**32 - 1),
    l1_id=st.integers(0, 2**64 - 1),
    bcid=st.integers(0, 2**16 - 1),
    source_id=st.integers(0, 2**16 - 1),
    l1_time_ns=st.integers(-(2**63), 2**63 - 1),
)


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    """Arrays of any wire dtype with arbitrary bit patterns (NaN payloads included)."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5))
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = draw(st.binary(min_size=nbytes, max_size=nbytes))
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


fragments = st.builds(
    Fragment, header=headers, arrays=st.dictionaries(names, arrays(), max_size=5)
)


def assert_same(a: Fragment, b: Fragment) -> None:
    assert a.header == b.header
    assert list(a.arrays) == list(b.arrays)
    for name, x in a.arrays.items():
        y = b.arrays[name]
        assert y.dtype == x.dtype and y.shape == x.shape
        assert y.tobytes() == x.tobytes()


def as_bytes(frames: list) -> list[bytes]:
    return [bytes(f) for f in frames]


# --- hand-built headers -------------------------------------------------------------------


def descriptor(
    name: bytes = b"x", code: int = 10, ndim: int = 1, shape: tuple = (2, 0, 0),
    nbytes: int | None = None,
) -> bytes:
    if nbytes is None:
        itemsize = np.dtype(wire._CODE_DTYPES[code]).itemsize if code in wire._CODE_DTYPES else 1
        nbytes = math.prod(shape[:ndim]) * itemsize
    return struct.pack("<12sBB2x3I4xQ", name, code, ndim, *shape, nbytes)


def message(
    descriptors: list[bytes], payloads: list[bytes], *, n_arrays: int | None = None,
    magic: int = wire.MAGIC, version: int = wire.VERSION, crc: int | None = None,
) -> list[bytes]:
    """Frames with the given header fields and, unless `crc` is given, a correct CRC."""
    n = len(descriptors) if n_arrays is None else n_arrays
    header = bytearray(struct.pack("<IHHIHHQqII", magic, version, n, 7, 1, 0x101, 42, 0, 0, 0))
    header += b"".join(descriptors)
    if crc is None:
        crc = zlib.crc32(header)
        for p in payloads:
            crc = zlib.crc32(p, crc)
    struct.pack_into("<I", header, 32, crc)
    return [bytes(header), *payloads]


def test_layout_sizes() -> None:
    assert wire.HEADER_FIXED_SIZE == 40
    assert wire.DESCRIPTOR_SIZE == 40
    assert struct.pack("<I", wire.MAGIC) == b"TSF1"


def test_hand_built_message_decodes() -> None:
    payload = np.array([1.5, -2.0]).tobytes()
    fragment = wire.decode_fragment(message([descriptor()], [payload]))
    assert fragment.header == FragmentHeader(7, 42, 1, 0x101, 0)
    np.testing.assert_array_equal(fragment.arrays["x"], [1.5, -2.0])


# --- round trips --------------------------------------------------------------------------


@FAST
@given(fragments)
def test_round_trip(fragment: Fragment) -> None:
    frames = wire.encode_fragment(fragment)
    assert_same(fragment, wire.decode_fragment(frames))
    assert_same(fragment, wire.decode_fragment(as_bytes(frames)))
    assert_same(fragment, wire.decode_fragment([bytearray(f) for f in frames]))
    assert_same(fragment, wire.decode_from_bytes(wire.encode_to_bytes(fragment)))
    assert wire.peek_header(frames[0]) == fragment.header
    assert wire.fragment_nbytes(frames) == sum(len(bytes(f)) for f in frames)


def test_round_trip_non_contiguous_and_extreme_values() -> None:
    base = np.arange(60, dtype=np.int64).reshape(6, 10)
    nan_payload = np.array([0x7FF0000000000001, 0xFFF8DEADBEEF0000], dtype=np.uint64).view("<f8")
    fragment = Fragment(
        FragmentHeader(2**32 - 1, 2**64 - 1, 2**16 - 1, 2**16 - 1, -(2**63)),
        {"strided": base[::2, ::3], "transposed": base.T, "nans": nan_payload},
    )
    assert_same(fragment, wire.decode_fragment(wire.encode_fragment(fragment)))


def test_round_trip_over_zmq_zero_copy() -> None:
    fragment = Fragment(
        FragmentHeader(1, 2, 3, 4, 5),
        {"hits": np.arange(100_000, dtype=np.float32).reshape(1000, 100),
         "ids": np.arange(7, dtype=np.uint16)},
    )
    ctx = zmq.Context()
    try:
        a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        a.bind("inproc://wire-test")
        b.connect("inproc://wire-test")
        a.send_multipart(wire.encode_fragment(fragment), copy=False)
        frames = b.recv_multipart(copy=False)
        assert all(isinstance(f, zmq.Frame) for f in frames)
        assert wire.peek_header(frames[0]) == fragment.header
        assert_same(fragment, wire.decode_fragment(frames))
        a.close(linger=0)
        b.close(linger=0)
    finally:
        ctx.term()


# --- corruption ---------------------------------------------------------------------------


@FAST
@given(fragments, st.data())
def test_any_single_byte_flip_is_detected(fragment: Fragment, data: st.DataObject) -> None:
    frames = [bytearray(f) for f in wire.encode_fragment(fragment)]
    i = data.draw(st.sampled_from([i for i, f in enumerate(frames) if len(f) > 0]))
    pos = data.draw(st.integers(0, len(frames[i]) - 1))
    frames[i][pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises(WireFormatError):
        wire.decode_fragment(frames)


@FAST
@given(fragments, st.data())
def test_truncating_or_extending_any_frame_raises(
    fragment: Fragment, data: st.DataObject
) -> None:
    frames = as_bytes(wire.encode_fragment(fragment))
    i = data.draw(st.integers(0, len(frames) - 1))
    if frames[i] and data.draw(st.booleans()):
        frames[i] = frames[i][: data.draw(st.integers(0, len(frames[i]) - 1))]
    else:
        frames[i] += data.draw(st.binary(min_size=1, max_size=16))
    with pytest.raises(WireFormatError):
        wire.decode_fragment(frames)


@FAST
@given(fragments, st.data())
def test_dropping_or_adding_frames_raises(fragment: Fragment, data: st.DataObject) -> None:
    frames = as_bytes(wire.encode_fragment(fragment))
    if data.draw(st.booleans()):
        del frames[data.draw(st.integers(0, len(frames) - 1))]
    else:
        frames.insert(data.draw(st.integers(1, len(frames))), data.draw(st.binary(max_size=16)))
    with pytest.raises(WireFormatError):
        wire.decode_fragment(frames)


@FAST
@given(st.lists(st.binary(max_size=300), max_size=6))
def test_random_frames_raise_only_wire_errors(frames: list[bytes]) -> None:
    try:
        wire.decode_fragment(frames)
    except WireFormatError:
        pass


@FAST
@given(st.integers(0, 20), st.binary(max_size=900), st.lists(st.binary(max_size=64), max_size=4))
def test_random_headers_past_magic_raise_only_wire_errors(
    n_arrays: int, rest: bytes, payloads: list[bytes]
) -> None:
    """Random bytes after a valid magic and version reach the descriptor checks."""
    header = struct.pack("<IHH", wire.MAGIC, wire.VERSION, n_arrays) + rest
    try:
        wire.decode_fragment([header, *payloads])
    except WireFormatError:
        pass


@FAST
@given(fragments, st.data())
def test_stored_bytes_flip_raises_or_decodes_unchanged(
    fragment: Fragment, data: st.DataObject
) -> None:
    """Only the container's zero padding may change without an error, and harmlessly."""
    stored = bytearray(wire.encode_to_bytes(fragment))
    pos = data.draw(st.integers(0, len(stored) - 1))
    stored[pos] ^= data.draw(st.integers(1, 255))
    try:
        decoded = wire.decode_from_bytes(bytes(stored))
    except WireFormatError:
        return
    assert_same(fragment, decoded)


@FAST
@given(fragments, st.data())
def test_stored_bytes_truncated_raises(fragment: Fragment, data: st.DataObject) -> None:
    stored = wire.encode_to_bytes(fragment)
    with pytest.raises(WireFormatError):
        wire.decode_from_bytes(stored[: data.draw(st.integers(0, len(stored) - 1))])
    with pytest.raises(WireFormatError):
        wire.decode_from_bytes(stored + data.draw(st.binary(min_size=1, max_size=16)))


@FAST
@given(st.binary(max_size=400))
def test_random_stored_bytes_raise_only_wire_errors(data: bytes) -> None:
    try:
        wire.decode_from_bytes(data)
    except WireFormatError:
        pass


# --- each error, from a hand-built header -------------------------------------------------


def test_no_frames_or_short_header_is_truncated() -> None:
    with pytest.raises(TruncatedFragment, match="no frames"):
        wire.decode_fragment([])
    with pytest.raises(TruncatedFragment, match="39 bytes"):
        wire.decode_fragment([message([], [])[0][:39]])
    with pytest.raises(TruncatedFragment):
        wire.peek_header(b"TSF1")


def test_bad_magic() -> None:
    frames = message([], [], magic=0xDEADBEEF)
    with pytest.raises(BadMagic, match=r"bad magic 0xdeadbeef .*0x31465354 'TSF1'"):
        wire.decode_fragment(frames)
    with pytest.raises(BadMagic):
        wire.peek_header(frames[0])


def test_unsupported_version() -> None:
    with pytest.raises(UnsupportedVersion, match="version 2"):
        wire.decode_fragment(message([], [], version=2))


def test_too_many_arrays_is_absurd_before_descriptors_are_read() -> None:
    with pytest.raises(AbsurdSize, match="65535 arrays"):
        wire.decode_fragment(message([], [], n_arrays=0xFFFF))
    frames = message([descriptor(name=b"a%d" % i) for i in range(3)], [bytes(16)] * 3)
    with pytest.raises(AbsurdSize, match="3 arrays"):
        wire.decode_fragment(frames, wire.WireLimits(max_arrays=2))


def test_header_length_mismatch() -> None:
    with pytest.raises(TruncatedFragment, match="need 80"):
        wire.decode_fragment(message([], [bytes(16)], n_arrays=1))
    frames = message([descriptor()], [bytes(16)])
    with pytest.raises(MalformedDescriptor, match="need only 80"):
        wire.decode_fragment([frames[0] + bytes(40), frames[1]])


def test_payload_frame_count_mismatch() -> None:
    frames = message([descriptor()], [bytes(16)])
    with pytest.raises(TruncatedFragment, match="0 payload frames for 1 arrays"):
        wire.decode_fragment(frames[:1])
    with pytest.raises(TruncatedFragment, match="2 payload frames for 1 arrays"):
        wire.decode_fragment([*frames, b""])


@pytest.mark.parametrize(
    ("desc", "match"),
    [
        (descriptor(code=0, nbytes=2), "unknown dtype code 0"),
        (descriptor(code=11, nbytes=2), "unknown dtype code 11"),
        (descriptor(name=b""), "array name"),
        (descriptor(name=b"bad name"), "array name"),
        (descriptor(name=b"a\0b"), "array name"),
        (descriptor(name=b"\xff"), "array name"),
        (descriptor(ndim=0, shape=(0, 0, 0), nbytes=8), "ndim 0"),
        (descriptor(ndim=4, shape=(1, 1, 1), nbytes=8), "ndim 4"),
        (descriptor(ndim=1, shape=(2, 1, 0), nbytes=16), "unused dimensions"),
        (descriptor(nbytes=15), "nbytes 15"),
    ],
)
def test_malformed_descriptor(desc: bytes, match: str) -> None:
    with pytest.raises(MalformedDescriptor, match=match):
        wire.decode_fragment(message([desc], [bytes(16)]))


def test_duplicate_names_are_malformed() -> None:
    with pytest.raises(MalformedDescriptor, match="duplicate"):
        wire.decode_fragment(message([descriptor(), descriptor()], [bytes(16)] * 2))


def test_sizes_over_limits_are_absurd() -> None:
    limits = wire.WireLimits(max_array_bytes=16, max_fragment_bytes=24)
    with pytest.raises(AbsurdSize, match="array x shape \\(3,\\) is 24 bytes"):
        wire.decode_fragment(message([descriptor(shape=(3, 0, 0))], [bytes(24)]), limits)
    two = message([descriptor(name=b"a"), descriptor(name=b"b")], [bytes(16)] * 2)
    with pytest.raises(AbsurdSize, match="total 32 bytes"):
        wire.decode_fragment(two, limits)


def test_huge_claimed_sizes_are_refused_without_allocating() -> None:
    huge = descriptor(code=1, ndim=2, shape=(2**32 - 1, 2**20, 0))
    frames = message([huge], [b""])
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(AbsurdSize):
            wire.decode_fragment(frames)
        with pytest.raises(AbsurdSize):
            wire.decode_from_bytes(struct.pack("<Q", 2**63))
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 1024 * 1024
    assert time.perf_counter() - start < 1.0


def test_payload_length_mismatch_is_truncated() -> None:
    with pytest.raises(TruncatedFragment, match="x is 15 bytes, header says 16"):
        wire.decode_fragment(message([descriptor()], [bytes(15)]))


def test_checksum_mismatch() -> None:
    frames = message([descriptor()], [bytes(16)], crc=0x12345678)
    with pytest.raises(ChecksumMismatch, match="!= 0x12345678"):
        wire.decode_fragment(frames)


def test_peek_header_skips_the_crc() -> None:
    frames = message([descriptor()], [bytes(16)], crc=0)
    assert wire.peek_header(frames[0]).l1_id == 42
    with pytest.raises(ChecksumMismatch):
        wire.decode_fragment(frames)


def test_one_byte_string_is_not_a_frame_list() -> None:
    with pytest.raises(TypeError, match="decode_from_bytes"):
        wire.decode_fragment(wire.encode_to_bytes(Fragment(FragmentHeader(0, 0, 0, 0, 0))))


# --- encode errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "array", "match"),
    [
        ("f16", np.zeros(2, np.float16), "dtype"),
        ("b", np.zeros(2, bool), "dtype"),
        ("c", np.zeros(2, np.complex128), "dtype"),
        ("be", np.zeros(2, ">f8"), "dtype"),
        ("scalar", np.float64(1.0), "0 dimensions"),
        ("d4", np.zeros((1, 1, 1, 1)), "4 dimensions"),
        ("", np.zeros(2), "name"),
        ("thirteen_char", np.zeros(2), "name"),
        ("sp ace", np.zeros(2), "name"),
        ("é", np.zeros(2), "name"),
    ],
)
def test_encode_rejects_what_the_wire_cannot_carry(
    name: str, array: np.ndarray, match: str
) -> None:
    with pytest.raises(MalformedDescriptor, match=match):
        wire.encode_fragment(Fragment(FragmentHeader(0, 0, 0, 0, 0), {name: array}))


def test_encode_rejects_out_of_range_header() -> None:
    with pytest.raises(ValueError, match="out of range"):
        wire.encode_fragment(Fragment(FragmentHeader(0, 0, 2**16, 0, 0)))


# --- zero copy ----------------------------------------------------------------------------


def test_encode_does_not_copy_contiguous_arrays() -> None:
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    empty = np.zeros((0, 4))
    frames = wire.encode_fragment(Fragment(FragmentHeader(0, 0, 0, 0, 0), {"a": a, "e": empty}))
    assert isinstance(frames[0], bytes)
    assert isinstance(frames[1], memoryview)
    assert np.shares_memory(np.frombuffer(frames[1], np.uint8), a)
    assert len(frames[2]) == 0


def test_decoded_arrays_are_read_only_views_of_the_frames() -> None:
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    frames = [bytearray(f) for f in wire.encode_fragment(
        Fragment(FragmentHeader(0, 0, 0, 0, 0), {"a": a}))]
    decoded = wire.decode_fragment(frames).arrays["a"]
    assert np.shares_memory(decoded, np.frombuffer(frames[1], np.uint8))
    assert not decoded.flags.writeable
    frames[1][0:8] = np.float64(99.0).tobytes()  # the view sees the frame's bytes
    assert decoded[0, 0] == 99.0


def test_decode_from_bytes_is_zero_copy_and_aligned() -> None:
    fragment = Fragment(
        FragmentHeader(0, 0, 0, 0, 0),
        {"u8": np.arange(3, dtype=np.uint8), "f8": np.arange(5, dtype=np.float64)},
    )
    stored = wire.encode_to_bytes(fragment)
    decoded = wire.decode_from_bytes(stored)
    for array in decoded.arrays.values():
        assert np.shares_memory(array, np.frombuffer(stored, np.uint8))
        assert array.flags.aligned
