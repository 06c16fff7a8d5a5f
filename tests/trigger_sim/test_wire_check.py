"""Tests of trigger_sim.wire.check_fragment: the builder's check accepts exactly what
decode_fragment accepts and raises exactly what it raises, on its fast path too."""

from __future__ import annotations

import struct
import zlib

import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trigger_sim.test_wire import FAST, descriptor, fragments, message
from trigger_sim import wire
from trigger_sim.errors import ChecksumMismatch, MalformedDescriptor
from trigger_sim.event import Fragment


def outcome(fn, frames, limits):
    try:
        return "ok", fn(frames, limits)
    except Exception as err:  # the kind and the text must be the same
        return type(err).__name__, str(err)


def same_verdict(frames: list, limits: wire.WireLimits = wire.DEFAULT_LIMITS) -> None:
    kind, got = outcome(wire.check_fragment, frames, limits)
    want_kind, want = outcome(wire.decode_fragment, frames, limits)
    assert kind == want_kind, (got, want)
    if kind == "ok":
        h = want.header
        assert got == (h.run_number, h.l1_id, h.source_id, h.l1_time_ns)
    else:
        assert got == want


def with_crc(header: bytearray, payloads: list[bytes]) -> list[bytes]:
    """The frames with a CRC that matches them, so the other checks are what decides."""
    struct.pack_into("<I", header, 32, 0)
    crc = zlib.crc32(bytes(header))
    for p in payloads:
        crc = zlib.crc32(p, crc)
    struct.pack_into("<I", header, 32, crc)
    return [bytes(header), *payloads]


@FAST
@given(fragments)
def test_good_fragments_pass_both_ways(fragment: Fragment) -> None:
    frames = [bytes(f) for f in wire.encode_fragment(fragment)]
    same_verdict(frames)  # the long way (array kinds not seen yet), then the fast one
    same_verdict(frames)


@settings(FAST, max_examples=400)
@given(fragments.filter(lambda f: len(f.arrays) > 0), st.data())
def test_damaged_header_fields_get_the_same_verdict(fragment: Fragment, data: st.DataObject) -> None:
    """Any header byte changed and the CRC made to match again: the checks of the header
    and descriptors decide, on the fast path (kinds already seen) as on the long one."""
    frames = [bytes(f) for f in wire.encode_fragment(fragment)]
    same_verdict(frames)
    header = bytearray(frames[0])
    first = wire.HEADER_FIXED_SIZE if len(header) > wire.HEADER_FIXED_SIZE and data.draw(st.booleans()) else 0
    for _ in range(data.draw(st.integers(1, 3))):  # half the time in the descriptors
        pos = data.draw(st.integers(first, len(header) - 1))
        header[pos] = data.draw(st.sampled_from([0, 1, 2, 3, 255, data.draw(st.integers(0, 255))]))
    same_verdict(with_crc(header, frames[1:]))


@settings(FAST, max_examples=400)
@given(fragments.filter(lambda f: len(f.arrays) > 0), st.data())
def test_damaged_frames_get_the_same_verdict(fragment: Fragment, data: st.DataObject) -> None:
    frames = [bytes(f) for f in wire.encode_fragment(fragment)]
    same_verdict(frames)
    i = data.draw(st.integers(0, len(frames) - 1))
    action = data.draw(st.sampled_from(["flip", "cut", "extend", "drop", "add"]))
    if action == "flip" and frames[i]:
        pos = data.draw(st.integers(0, len(frames[i]) - 1))
        frames[i] = frames[i][:pos] + bytes([frames[i][pos] ^ 0xFF]) + frames[i][pos + 1:]
    elif action == "cut" and frames[i]:
        frames[i] = frames[i][:-1]
    elif action == "extend":
        frames[i] += b"\0" * 8
    elif action == "drop":
        del frames[i]
    else:
        frames.insert(i + 1, b"\0" * 8)
    same_verdict(frames)
    if frames and len(frames[0]) >= wire.HEADER_FIXED_SIZE:  # and with a CRC that matches the damage
        same_verdict(with_crc(bytearray(frames[0]), frames[1:]))


@FAST
@given(fragments, st.integers(0, 64), st.integers(0, 4096), st.integers(0, 8192))
def test_limits_get_the_same_verdict(fragment: Fragment, max_arrays: int, max_array: int, max_total: int) -> None:
    frames = [bytes(f) for f in wire.encode_fragment(fragment)]
    same_verdict(frames)
    same_verdict(frames, wire.WireLimits(max_arrays=max_arrays, max_array_bytes=max_array, max_fragment_bytes=max_total))


def test_a_corrupt_payload_is_a_checksum_mismatch_on_the_fast_path_too() -> None:
    frames = message([descriptor()], [bytes(16)])
    wire.check_fragment(frames)  # the kind is now known: the next check takes the short way
    bad = [frames[0], b"\1" + bytes(15)]
    with pytest.raises(ChecksumMismatch, match="crc32"):
        wire.check_fragment(bad)


def test_zmq_frames_are_checked_without_copies() -> None:
    frames = [zmq.Frame(f) for f in message([descriptor()], [bytes(16)])]
    assert wire.check_fragment(frames) == (7, 42, 0x101, 0)


def test_duplicate_names_are_refused_on_the_fast_path_too() -> None:
    wire.check_fragment(message([descriptor(b"dup")], [bytes(16)]))  # the kind is now known
    frames = message([descriptor(b"dup"), descriptor(b"dup")], [bytes(16), bytes(16)])
    same_verdict(frames)
    with pytest.raises(MalformedDescriptor, match="duplicate"):
        wire.check_fragment(frames)


@FAST
@given(fragments, st.sampled_from(["frames", "received", "arrays", "bytearrays"]), st.booleans())
def test_every_kind_of_frame_gets_the_same_verdict(fragment: Fragment, kind: str, damaged: bool) -> None:
    """As the builder receives them (header bytes, payloads zmq.Frame), all zmq.Frame, the
    encoder's own views (typed arrays go the long way) or bytearrays: the same verdict, good or
    with a payload byte flipped."""
    frames = [bytes(f) for f in wire.encode_fragment(fragment)]
    same_verdict(frames)  # the array kinds are known from here on
    if damaged and len(frames) > 1 and frames[1]:
        frames[1] = bytes([frames[1][0] ^ 1]) + frames[1][1:]
    if kind == "frames":
        frames = [zmq.Frame(f) for f in frames]
    elif kind == "received":
        frames = [frames[0], *(zmq.Frame(f) for f in frames[1:])]
    elif kind == "arrays":
        frames = [frames[0], *(memoryview(a) for a in fragment.arrays.values())] if not damaged else frames
    else:
        frames = [bytearray(f) for f in frames]
    same_verdict(frames)
