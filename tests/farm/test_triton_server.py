"""farm.triton_server: what is checked before a local server is launched."""

from __future__ import annotations

import socket

import pytest

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
