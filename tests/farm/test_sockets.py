"""Tests of farm.sockets' multipart helpers: the same messages as pyzmq's send_multipart and
recv_multipart, part for part, for every kind of part the farm sends."""

from __future__ import annotations

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from farm.sockets import bind, connect, make_socket, recv_parts, send_parts

TIMEOUT_MS = 5000


@pytest.fixture
def pair():
    ctx = zmq.Context()
    push, pull = make_socket(ctx, zmq.PUSH), make_socket(ctx, zmq.PULL)
    pull.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    connect(push, bind(pull))
    yield push, pull
    push.close(linger=0)
    pull.close(linger=0)
    ctx.term()


parts_strategy = st.lists(st.binary(max_size=70_000), min_size=1, max_size=6)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # the pair only carries messages
@given(parts=parts_strategy, copy=st.booleans())
def test_send_parts_sends_what_send_multipart_sends(pair, parts, copy):
    push, pull = pair
    send_parts(push, parts, copy=copy)
    push.send_multipart(parts, copy=copy)
    assert pull.recv_multipart() == parts
    assert pull.recv_multipart() == parts


def test_send_parts_takes_frames_views_and_arrays(pair):
    push, pull = pair
    array = np.arange(10_000, dtype=np.float32)
    parts = [b"head", zmq.Frame(b"frame"), memoryview(b"view"), memoryview(array).cast("B")]
    send_parts(push, parts, copy=False)
    assert pull.recv_multipart() == [b"head", b"frame", b"view", array.tobytes()]


def test_send_parts_raises_what_send_raises(pair):
    push, _ = pair
    with pytest.raises(TypeError):
        send_parts(push, ["text is not a frame"])
    with pytest.raises(IndexError):
        send_parts(push, [])


@pytest.mark.parametrize("bad_at", [0, 1, 2])
def test_a_bad_part_sends_nothing_and_the_next_message_arrives_whole(pair, bad_at):
    push, pull = pair
    parts: list = [b"a", b"b", b"c"]
    parts[bad_at] = "text is not a frame"
    with pytest.raises(TypeError):
        send_parts(push, parts)
    send_parts(push, [b"next", b"message"])
    assert recv_parts(pull) == [b"next", b"message"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # the pair only carries messages
@given(parts=parts_strategy, copy=st.booleans())
def test_recv_parts_receives_what_recv_multipart_receives(pair, parts, copy):
    push, pull = pair
    push.send_multipart(parts)
    push.send_multipart(parts)
    got, want = recv_parts(pull, copy=copy), pull.recv_multipart(copy=copy)
    assert [type(f) for f in got] == [type(f) for f in want] == [bytes if copy else zmq.Frame] * len(parts)
    assert [bytes(f) for f in got] == [bytes(f) for f in want] == parts


def test_recv_parts_keeps_messages_apart(pair):
    push, pull = pair
    for message in ([b"a"], [b"b", b"c"], [b"d", b"", b"e"]):
        push.send_multipart(message)
    assert [recv_parts(pull) for _ in range(3)] == [[b"a"], [b"b", b"c"], [b"d", b"", b"e"]]


def test_recv_parts_nonblocking_raises_again_when_empty(pair):
    _, pull = pair
    with pytest.raises(zmq.Again):
        recv_parts(pull, zmq.NOBLOCK)
