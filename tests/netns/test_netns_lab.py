"""Tests of the namespace harness: a ZeroMQ socket in one emulated host reaches another,
not once its link is cut, and nothing of the lab is left afterwards."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from netns_lab import NetnsLab

SERVER = textwrap.dedent("""
    import sys, zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.REP)
    s.setsockopt(zmq.LINGER, 0)
    s.bind(f"tcp://{sys.argv[1]}:5599")
    print("bound", flush=True)
    if s.poll(20_000):
        s.send(b"pong from " + sys.argv[1].encode() + b" to " + s.recv())
""")
CLIENT = textwrap.dedent("""
    import sys, zmq
    ctx = zmq.Context()
    c = ctx.socket(zmq.REQ)
    c.setsockopt(zmq.LINGER, 0)
    c.connect(f"tcp://{sys.argv[1]}:5599")
    c.send(b"ping")
    print(c.recv().decode() if c.poll(int(sys.argv[2])) else "timeout", flush=True)
""")


def _serve(lab: NetnsLab, host: str) -> subprocess.Popen:
    server = lab.popen(host, [sys.executable, "-c", SERVER, lab.address(host)], stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "bound"
    return server


def test_zeromq_reaches_another_namespace_and_not_over_a_cut_link(lab_factory):
    lab = lab_factory(["a", "b"])
    assert lab.address("a") != lab.address("b") and lab.address("a").startswith("10.")
    server = _serve(lab, "a")
    reply = lab.run("b", [sys.executable, "-c", CLIENT, lab.address("a"), "10000"], timeout_s=30)
    assert reply.stdout.strip() == f"pong from {lab.address('a')} to ping", reply.stderr
    server.wait(timeout=10)
    _serve(lab, "a")
    lab.link("b", up=False)
    cut = lab.run("b", [sys.executable, "-c", CLIENT, lab.address("a"), "500"], timeout_s=30)
    assert cut.stdout.strip() == "timeout"


def test_everything_is_removed_even_when_the_test_fails(netns_possible):
    with pytest.raises(RuntimeError):
        with NetnsLab(["x", "y"]) as lab:
            sleeper = lab.popen("x", ["sleep", "60"])
            assert len(lab.exists()) == 3
            raise RuntimeError("a failing test")
    assert lab.exists() == []
    assert sleeper.poll() is not None
