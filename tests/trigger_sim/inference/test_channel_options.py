"""The Triton clients' options: TLS, and a fixed reconnect backoff where configured."""

import tritonclient.grpc as grpcclient

from trigger_sim.config import FarmConfig, with_overrides
from trigger_sim.inference.channel_options import client_options, reconnect_channel_args
from trigger_sim.planning.spec import from_farm_config


def test_without_a_reconnect_backoff_the_clients_keep_tritonclients_own_channel():
    options = client_options(FarmConfig())
    assert "channel_args" not in options and options == FarmConfig().network.triton_client_options()


def test_a_reconnect_backoff_sets_grpcs_initial_and_maximum_and_keeps_tritonclients_arguments():
    args = dict(client_options(with_overrides(FarmConfig(), inference={"reconnect_backoff_ms": 100.0}))["channel_args"])
    assert args["grpc.initial_reconnect_backoff_ms"] == args["grpc.max_reconnect_backoff_ms"] == 100
    assert args["grpc.max_receive_message_length"] == grpcclient.MAX_GRPC_MESSAGE_SIZE  # tritonclient's own, not lost
    assert args["grpc.keepalive_time_ms"] == grpcclient.KeepAliveOptions().keepalive_time_ms
    assert "grpc.min_reconnect_backoff_ms" not in args  # gRPC's connect timeout: left alone
    assert reconnect_channel_args(0.0) is None


def test_the_model_mirrors_the_farms_reconnect_backoff():
    assert from_farm_config(FarmConfig(), 2).reconnect_backoff_ms == 1000.0  # gRPC's own
    farm = from_farm_config(with_overrides(FarmConfig(), inference={"reconnect_backoff_ms": 100.0}), 2)
    assert farm.reconnect_backoff_ms == farm.reconnect_max_backoff_ms == 100.0


def test_every_argument_tritonclient_sets_by_itself_is_kept(monkeypatch):
    """Passing channel_args replaces tritonclient's own list: each of its arguments, with its
    value, must be in ours (read from the channel tritonclient makes without them)."""
    import grpc
    import pytest

    made: list = []
    real = grpc.insecure_channel
    monkeypatch.setattr(grpc, "insecure_channel", lambda url, options=None, **kw: made.append(options) or real(url, options=options, **kw))
    grpcclient.InferenceServerClient("127.0.0.1:1").close()
    own = dict(made[0])
    assert own and own.items() <= dict(reconnect_channel_args(250.0)).items()
    for bad in (50.0, 99.0, 100.5, -1.0):
        with pytest.raises(ValueError, match="reconnect_backoff_ms"):
            with_overrides(FarmConfig(), inference={"reconnect_backoff_ms": bad})
