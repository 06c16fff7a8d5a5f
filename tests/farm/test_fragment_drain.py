"""The builder's fragment input (farm.fragment_drain), compiled and in plain Python, gives
every fragment with check_fragment's verdict."""

from __future__ import annotations

import contextlib
import os
import random
import struct
import time

import numpy as np
import pytest
import zmq

from farm import fragment_drain
from trigger_sim.config import FarmConfig
from trigger_sim.event import Fragment, FragmentHeader
from trigger_sim.simulation import event_fragments
from trigger_sim.wire import DEFAULT_LIMITS, WireFormatError, check_fragment, crc32, encode_fragment

CRC_OFFSET, FIXED, DESC = 32, 40, 40

def _require_compiled() -> None:
    if not fragment_drain.compiled:
        why = f"the compiled fragment drain is not available: {fragment_drain.why_not_compiled}"
        if os.environ.get("CI") == "true":  # CI builds it (scripts/setup.sh): its absence is a failure there
            pytest.fail(why)
        pytest.skip(why)


def _compiled_drain(sock, limit):
    _require_compiled()
    return fragment_drain.drain(sock, limit)


def _compiled_keeping(min_bytes: int):
    def drain(sock, limit):
        _require_compiled()
        fragment_drain._ext.set_keep_min_bytes(min_bytes)
        try:
            return fragment_drain.drain(sock, limit)
        finally:
            fragment_drain._ext.set_keep_min_bytes(fragment_drain.KEEP_MIN_BYTES)
    return drain


DRAINS = {"compiled": _compiled_drain, "compiled copying every part": _compiled_keeping(-1),
          "compiled keeping every part": _compiled_keeping(0), "python": fragment_drain.drain_python}


def _verdict(frames):
    try:
        return ("ok", *check_fragment(frames))
    except WireFormatError as err:
        return (type(err).__name__, str(err))


@contextlib.contextmanager
def _pipe():
    ctx = zmq.Context()
    push = pull = None
    try:
        pull = ctx.socket(zmq.PULL)
        pull.setsockopt(zmq.RCVHWM, 0)
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.SNDHWM, 0)
        push.connect(f"tcp://127.0.0.1:{port}")
        yield push, pull
    finally:
        for sock in (push, pull):
            if sock is not None:
                sock.close(0)
        ctx.term()


def _drain_all(drain, pull, n: int, batch: int = 7) -> list:
    got: list = []
    deadline = time.monotonic() + 20
    while len(got) < n and time.monotonic() < deadline:
        items = drain(pull, batch)
        assert len(items) <= batch
        if not items:
            pull.poll(100)
        got += items
    return got


def _assert_verdicts(msgs, got) -> None:
    """Each fragment came once, in order, whole, with check_fragment's verdict."""
    assert len(got) == len(msgs)
    for m, (ok, frames, nbytes, run, l1_id, source_id, l1_time_ns) in zip(msgs, got):
        assert [bytes(f) for f in frames] == m and [len(f) for f in frames] == [len(x) for x in m]
        assert nbytes == sum(map(len, m))
        verdict = _verdict(m)
        if ok:
            assert verdict == ("ok", run, l1_id, source_id, l1_time_ns)
        else:
            assert _verdict(frames) == verdict


def _messages(n_events: int = 40, seed: int = 1) -> list[list[bytes]]:
    config = FarmConfig()
    good = [[bytes(memoryview(x).cast("B")) for x in encode_fragment(f)]
            for l1 in range(n_events) for f in event_fragments(config, l1, l1 * 1000)]
    rng = random.Random(seed)
    bad = []
    for m in good:
        m2 = [bytearray(x) for x in m]
        kind = rng.randrange(6)
        if kind == 0:
            i = rng.randrange(len(m2))
            if m2[i]:
                m2[i][rng.randrange(len(m2[i]))] ^= 1 << rng.randrange(8)
        elif kind == 1:
            m2 = m2[:-1]
        elif kind == 2:
            m2[0] = m2[0][:rng.randrange(len(m2[0]))]
        elif kind == 3:
            m2[-1] += b"x"
        elif kind == 4:
            m2.append(bytearray(b"zz"))
        else:
            m2[0][rng.randrange(40, len(m2[0]))] = rng.randrange(256)
        bad.append([bytes(x) for x in m2])
    out = good + bad + [[b""], [bytes(40)], [b"x"] * 100]
    rng.shuffle(out)
    return out


@pytest.mark.parametrize("kind", sorted(DRAINS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_drain_gives_every_fragment_once_with_check_fragments_verdict(kind, seed):
    drain = DRAINS[kind]
    msgs = _messages(seed=seed)
    with _pipe() as (push, pull):
        for m in msgs:
            push.send_multipart(m)
        got = _drain_all(drain, pull, len(msgs))
        assert len(got) == len(msgs)
        _assert_verdicts(msgs, got)
        accepted = sum(1 for m in msgs if _verdict(m)[0] == "ok")
        assert sum(1 for item in got if item[0]) == accepted  # every good fragment is vouched for by the drain
        assert drain(pull, None) == []  # nothing more, nothing twice
        kept = [f for item in got for f in item[1] if not isinstance(f, bytes)]
        if kind == "compiled":  # the large parts are libzmq's messages, the small ones bytes
            assert kept and all(len(f) >= fragment_drain.KEEP_MIN_BYTES for f in kept)
        elif kind == "compiled copying every part":
            assert not kept


def test_the_compiled_crc_is_zlibs():
    import zlib
    _require_compiled()
    crc32 = fragment_drain._ext.crc32
    data = bytes(range(256)) * 70
    assert crc32(data) == zlib.crc32(data)
    assert crc32(data[100:], crc32(data[:100])) == zlib.crc32(data)


# -- each rule of the check, broken alone (the CRC recomputed, so that only the rule can catch it)
def _good() -> list[bytes]:
    arrays = {"hits": np.arange(12, dtype=np.float32).reshape(3, 4), "ids": np.arange(5, dtype=np.int64)}
    header = FragmentHeader(run_number=7, bcid=3, source_id=0x11, l1_id=42, l1_time_ns=123_456)
    return [bytes(memoryview(f).cast("B")) for f in encode_fragment(Fragment(header, arrays))]


def _with_crc(frames: list[bytes]) -> list[bytes]:
    header = bytearray(frames[0])
    header[CRC_OFFSET:CRC_OFFSET + 4] = bytes(4)
    crc = crc32(bytes(header))
    for payload in frames[1:]:
        crc = crc32(payload, crc)
    struct.pack_into("<I", header, CRC_OFFSET, crc)
    return [bytes(header), *frames[1:]]


def _patched(at: int, fmt: str, value) -> list[bytes]:
    frames = _good()
    header = bytearray(frames[0])
    struct.pack_into(fmt, header, at, value)
    return _with_crc([bytes(header), *frames[1:]])


D0, D1 = FIXED, FIXED + DESC  # the two descriptors: name 12s, code B, ndim B, 2x, dims 3I, 4x, nbytes Q
BROKEN = {
    "magic": _patched(0, "<I", 0x31465355),
    "version": _patched(4, "<H", 2),
    "array count": _patched(6, "<H", 1),
    "name character": _patched(D0, "12s", b"hi-ts"),
    "empty name": _patched(D0, "12s", b""),
    "duplicate name": _patched(D1, "12s", b"hits"),
    "dtype code 0": _patched(D0 + 12, "<B", 0),
    "dtype code 11": _patched(D0 + 12, "<B", 11),
    "dtype of another size": _patched(D0 + 12, "<B", 7),  # 8-byte items: nbytes no longer matches
    "ndim 0": _patched(D0 + 13, "<B", 0),
    "ndim 4": _patched(D0 + 13, "<B", 4),
    "an unused dimension set": _patched(D1 + 20, "<I", 1),
    "dims against nbytes": _patched(D0 + 16, "<I", 4),
    "nbytes against the frame": _patched(D1 + 32, "<Q", 48),
    "header length": _with_crc([_good()[0] + bytes(8), *_good()[1:]]),
    "a frame short": _with_crc([*_good()[:-1], _good()[-1][:-8]]),
}


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_a_fragment_breaking_one_rule_is_not_vouched_for(rule):
    """Only the rule is broken (the CRC fits): the compiled check must not accept it, and
    check_fragment rejects it."""
    _require_compiled()
    assert _verdict(_good())[0] == "ok"
    msgs = [_good(), BROKEN[rule], _good()]
    assert _verdict(BROKEN[rule])[0] != "ok", rule
    with _pipe() as (push, pull):
        for m in msgs:
            push.send_multipart(m)
        got = _drain_all(fragment_drain.drain, pull, len(msgs))
    assert [item[0] for item in got] == [True, False, True]
    _assert_verdicts(msgs, got)


def test_fragments_beyond_the_limits_are_left_to_pythons_check():
    """With limits below the fragment's, the compiled check does not vouch for it (here
    check_fragment, with the default limits, accepts it: the verdict is Python's)."""
    _require_compiled()
    good = _good()
    for arrays, array_bytes, fragment_bytes in ((1, 1 << 20, 1 << 20), (16, 40, 1 << 20), (16, 1 << 20, 80)):
        fragment_drain._ext.set_limits(arrays, array_bytes, fragment_bytes)
        try:
            with _pipe() as (push, pull):
                push.send_multipart(good)
                got = _drain_all(fragment_drain.drain, pull, 1)
        finally:
            lim = DEFAULT_LIMITS
            fragment_drain._ext.set_limits(lim.max_arrays, lim.max_array_bytes, lim.max_fragment_bytes)
        assert [item[0] for item in got] == [False], (arrays, array_bytes, fragment_bytes)
    with _pipe() as (push, pull):  # the default limits again: vouched for
        push.send_multipart(good)
        assert [item[0] for item in _drain_all(fragment_drain.drain, pull, 1)] == [True]


def test_a_fragment_without_arrays_is_vouched_for():
    _require_compiled()
    header = FragmentHeader(run_number=7, bcid=0, source_id=1, l1_id=9, l1_time_ns=5)
    frames = [bytes(memoryview(f).cast("B")) for f in encode_fragment(Fragment(header, {}))]
    with _pipe() as (push, pull):
        push.send_multipart(frames)
        got = _drain_all(fragment_drain.drain, pull, 1)
    assert got[0][0] is True and got[0][3:] == (7, 9, 1, 5)


@pytest.mark.parametrize("kind", ["compiled", "python"])
def test_without_the_check_every_fragment_comes_back_unchecked(kind):
    if kind == "compiled":
        _require_compiled()
    drain = fragment_drain.drain if kind == "compiled" else fragment_drain.drain_python
    with _pipe() as (push, pull):
        push.send_multipart(_good())
        got = []
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            got = drain(pull, 5, False)
            pull.poll(50)
    assert [item[0] for item in got] == [False] and [bytes(f) for f in got[0][1]] == _good()


@pytest.mark.parametrize("kind", ["compiled", "python"])
def test_a_socket_that_cannot_receive_raises(kind):
    if kind == "compiled":
        _require_compiled()
    drain = fragment_drain.drain if kind == "compiled" else fragment_drain.drain_python
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    try:
        with pytest.raises(zmq.ZMQError):
            drain(push, 3)
    finally:
        push.close(0)
        ctx.term()


def test_a_kept_part_is_a_read_only_buffer_that_outlives_its_socket():
    _require_compiled()
    big = [bytes(range(256)) * 64]  # 16 KiB: kept, not copied
    with _pipe() as (push, pull):
        push.send_multipart(big)
        (item,) = _drain_all(fragment_drain.drain, pull, 1)
    part = item[1][0]  # the socket is closed and its context ended
    assert not isinstance(part, bytes) and len(part) == len(big[0])
    assert part.bytes == big[0] and bytes(part) == big[0] and memoryview(part).readonly
    with pytest.raises(TypeError):
        memoryview(part)[0] = 1
