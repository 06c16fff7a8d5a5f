"""The whole farm with CURVE on every ZeroMQ link (forced on loopback), and intruders refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq

from farm.security import Curve, make_keys
from farm.sockets import make_socket
from farm.one_host import Farm, FarmHooks, run_farm
from trigger_sim.config import load_config, with_overrides

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

N_EVENTS = 60


def test_farm_over_curve_decides_every_event_and_counts_an_unknown_client(tmp_path: Path, triton_server) -> None:
    keys = tmp_path / "keys"
    make_keys(keys)
    make_keys(tmp_path / "stranger")
    config = with_overrides(
        load_config(), readout={"rate_hz": 60.0}, worker={"count": 2},
        network={"bind_address": "127.0.0.1", "curve": True, "curve_keys_dir": str(keys)},
        inference={"triton_url": triton_server.grpc_url},
    )
    ctx = zmq.Context()
    intruders: list[zmq.Socket] = []

    def intrude(farm: Farm) -> None:
        """A client with an unknown key and a plain-text client push junk at the collector."""
        stranger, plain = make_socket(ctx, zmq.PUSH), make_socket(ctx, zmq.PUSH)
        intruders.extend((stranger, plain))
        Curve(tmp_path / "stranger").secure_client(stranger, Curve(keys).server_public_key)
        for sock in intruders:
            sock.connect(farm.collector.endpoint)
            sock.send_multipart([b"RESULT", b"junk"], zmq.NOBLOCK)

    try:
        summary = run_farm(config, n_events=N_EVENTS, output_dir=None, hooks=FarmHooks(on_started=intrude))
    finally:
        for sock in intruders:
            sock.close(linger=0)
        ctx.term()
    events = summary["events"]
    assert events["l1_accepted"] == N_EVENTS
    assert events["lost"] == 0, (summary["problems"], summary["collector"], summary["builder"])
    assert summary["inference"]["triton_calls"] > 0
    assert summary["collector"]["refused_peers"] == 1  # the stranger, however often it retried
    assert summary["collector"]["bad_messages"] == 0  # neither intruder's message got in
    assert summary["builder"]["refused_peers"] == 0
