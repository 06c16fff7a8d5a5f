"""farm.triton_server: what is checked before a local server is launched; a stopped
server's backend stubs are reaped here."""

from __future__ import annotations

import os
import resource
import socket

import pytest

from farm.lifecycle import child_pids
from farm.triton_server import TritonServer
from trigger_sim.errors import TritonStartError


def test_a_taken_metrics_port_is_refused_with_what_to_do(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        server = TritonServer(tmp_path, metrics_port=held.getsockname()[1])
        try:
            with pytest.raises(TritonStartError, match="triton_base_port"):
                server.launch()
            assert server.proc is None  # refused before anything started
        finally:
            server.stop()


def _cpu_s(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


@pytest.mark.integration
def test_a_stopped_servers_backend_stubs_are_reaped_and_their_cpu_counted_as_ours():
    """The server exits without waiting for its Python-backend stubs: they must not be left
    to init, which would reap them and keep their CPU time out of this process's children's
    usage (a benchmark would count it as another user's load)."""
    from trigger_sim.config import MODEL_REPOSITORY

    server = TritonServer(MODEL_REPOSITORY, 60)
    server.start()
    try:
        stubs = child_pids(server.proc.pid)
        assert stubs, "the shipped models run in Python-backend stubs"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = _cpu_s(server.proc.pid) + sum(_cpu_s(p) for p in stubs)
    finally:
        server.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert not [p for p in stubs if os.path.exists(f"/proc/{p}")], "a stub is left running or a zombie"
    counted_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert counted_s >= 0.95 * cpu_s, (counted_s, cpu_s)
