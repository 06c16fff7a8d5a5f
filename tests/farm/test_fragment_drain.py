"""The builder's fragment input (farm.fragment_drain), compiled and in plain Python, gives
every fragment with check_fragment's verdict."""

from __future__ import annotations

import os
import random
import time

import pytest
import zmq

from farm import fragment_drain
from trigger_sim.config import FarmConfig
from trigger_sim.simulation import event_fragments
from trigger_sim.wire import WireFormatError, check_fragment, encode_fragment



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
    ctx = zmq.Context()
    try:
        pull = ctx.socket(zmq.PULL)
        pull.setsockopt(zmq.RCVHWM, 0)
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.SNDHWM, 0)
        push.connect(f"tcp://127.0.0.1:{port}")
        for m in msgs:
            push.send_multipart(m)
        got: list = []
        deadline = time.monotonic() + 20
        while len(got) < len(msgs) and time.monotonic() < deadline:
            batch = drain(pull, 7)
            assert len(batch) <= 7
            if not batch:
                pull.poll(100)
            got += batch
        assert len(got) == len(msgs)
        for m, (ok, frames, nbytes, run, l1_id, source_id, l1_time_ns) in zip(msgs, got):
            assert [bytes(f) for f in frames] == m and [len(f) for f in frames] == [len(x) for x in m]
            assert nbytes == sum(map(len, m))
            verdict = _verdict(m)
            if ok:
                assert verdict == ("ok", run, l1_id, source_id, l1_time_ns)
            else:
                assert _verdict(frames) == verdict
        accepted = sum(1 for m in msgs if _verdict(m)[0] == "ok")
        assert sum(1 for item in got if item[0]) == accepted  # every good fragment is vouched for by the drain
        assert drain(pull, None) == []  # nothing more, nothing twice
        kept = [f for item in got for f in item[1] if not isinstance(f, bytes)]
        if kind == "compiled":  # the large parts are libzmq's messages, the small ones bytes
            assert kept and all(len(f) >= fragment_drain.KEEP_MIN_BYTES for f in kept)
        elif kind == "compiled copying every part":
            assert not kept
        push.close(0)
        pull.close(0)
    finally:
        ctx.term()


def test_the_compiled_crc_is_zlibs():
    import zlib
    _require_compiled()
    crc32 = fragment_drain._ext.crc32
    data = bytes(range(256)) * 70
    assert crc32(data) == zlib.crc32(data)
    assert crc32(data[100:], crc32(data[:100])) == zlib.crc32(data)
