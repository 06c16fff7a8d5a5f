"""CURVE for farm sockets: key files, encryption, refusing and counting unknown clients, config checks."""

from __future__ import annotations

import dataclasses
import select
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq
from click.testing import CliRunner

from farm.cli import main
from farm.security import AUTHORIZED_DIR, Curve, make_keys
from farm.sockets import bind, connect, make_socket
from trigger_sim.config import FarmConfig, NetworkConfig, load_config, with_overrides
from trigger_sim.errors import ConfigError, TriggerSimError
from trigger_sim.inference import triton_client

RECV_TIMEOUT_MS = 2000
REFUSED_WAIT_MS = 1000
PAYLOAD = b"plain-text-marker-" * 8


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    make_keys(tmp_path / "keys")
    return tmp_path / "keys"


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    try:
        yield context
    finally:
        context.term()


@pytest.fixture
def new_socket(ctx: zmq.Context) -> Iterator[Callable[[int], zmq.Socket]]:
    """A factory of sockets with send and receive timeouts, all closed (linger 0) at the end."""
    made: list[zmq.Socket] = []

    def new(kind: int) -> zmq.Socket:
        sock = make_socket(ctx, kind)
        sock.rcvtimeo = sock.sndtimeo = RECV_TIMEOUT_MS
        made.append(sock)
        return sock

    try:
        yield new
    finally:
        for sock in made:
            sock.close(linger=0)


@pytest.fixture
def server(keys: Path, new_socket) -> Iterator[tuple[Curve, zmq.Socket, str]]:
    """A CURVE PULL socket on loopback with this process's authenticator."""
    curve = Curve(keys)
    pull = new_socket(zmq.PULL)
    endpoint = bind(pull, "127.0.0.1", curve)
    try:
        yield curve, pull, endpoint
    finally:
        pull.close(linger=0)
        curve.close()


def wait_refused(curve: Curve, n: int) -> None:
    deadline = time.monotonic() + RECV_TIMEOUT_MS / 1e3
    while curve.refused_peers < n and time.monotonic() < deadline:
        time.sleep(0.02)


# -- keys -------------------------------------------------------------------------------------

def test_make_keys_writes_pairs_in_zmq_format_and_authorises_the_client(keys: Path) -> None:
    for name in ("server", "client"):
        public, secret = zmq.auth.load_certificate(keys / f"{name}.key_secret")
        assert secret and zmq.auth.load_certificate(keys / f"{name}.key") == (public, None)
        assert stat.S_IMODE((keys / f"{name}.key_secret").stat().st_mode) == 0o600
    authorised = zmq.auth.load_certificates(keys / AUTHORIZED_DIR)
    assert list(authorised) == [zmq.auth.load_certificate(keys / "client.key")[0]]


def test_make_keys_never_overwrites(keys: Path) -> None:
    before = {p.name: p.read_bytes() for p in keys.iterdir() if p.is_file()}
    with pytest.raises(TriggerSimError, match="never overwritten"):
        make_keys(keys)
    assert {p.name: p.read_bytes() for p in keys.iterdir() if p.is_file()} == before


def test_keys_command(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["keys", str(tmp_path / "k")])
    assert first.exit_code == 0, first.output
    assert "curve_keys_dir" in first.output and (tmp_path / "k" / "server.key_secret").is_file()
    again = runner.invoke(main, ["keys", str(tmp_path / "k")])
    assert again.exit_code != 0 and "never overwritten" in again.output


def test_missing_keys_folder_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="trigger-sim keys"):
        Curve(tmp_path / "nowhere")


# -- CURVE on real sockets --------------------------------------------------------------------

class Tap:
    """A TCP relay on loopback that records the bytes the client sends."""

    def __init__(self, target: str):
        host, port = target.removeprefix("tcp://").rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(RECV_TIMEOUT_MS / 1e3)
        self.endpoint = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.seen = bytearray()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._relay, daemon=True)
        self.thread.start()

    def _relay(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        upstream = socket.create_connection(self.target, timeout=RECV_TIMEOUT_MS / 1e3)
        try:
            while not self.stop.is_set():
                readable, _, _ = select.select([client, upstream], [], [], 0.05)
                for src in readable:
                    data = src.recv(65536)
                    if not data:
                        return
                    if src is client:
                        self.seen += data
                    (upstream if src is client else client).sendall(data)
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        self.thread.join(timeout=2.0)


def test_authorised_client_message_arrives_encrypted(new_socket, keys, server) -> None:
    curve, pull, endpoint = server
    tap = Tap(endpoint)
    try:
        push = new_socket(zmq.PUSH)
        connect(push, tap.endpoint, Curve(keys))
        push.send(PAYLOAD)
        frame = pull.recv(copy=False)
    finally:
        tap.close()
    assert frame.bytes == PAYLOAD
    assert pull.get(zmq.MECHANISM) == zmq.CURVE
    assert frame.get("User-Id") == Curve(keys).client_public_key.decode()  # set by our authenticator
    assert len(tap.seen) > len(PAYLOAD) and b"plain-text-marker" not in bytes(tap.seen)
    assert curve.refused_peers == 0


def test_unknown_client_key_is_refused_and_counted_once(new_socket, tmp_path, server) -> None:
    curve, pull, endpoint = server
    make_keys(tmp_path / "other")
    stranger = Curve(tmp_path / "other")  # a valid key pair that is not in authorized_clients/
    push = new_socket(zmq.PUSH)
    stranger.secure_client(push, curve.server_public_key)
    push.connect(endpoint)
    try:
        push.send(b"let me in", zmq.NOBLOCK)  # queued on the client side; the handshake never completes
    except zmq.Again:
        pass  # not even queued (no pipe yet): the refusal below is what is tested
    assert not pull.poll(REFUSED_WAIT_MS)
    wait_refused(curve, 1)
    time.sleep(0.3)  # it retries; the same key still counts once
    assert curve.refused_peers == 1


def test_plain_client_is_refused(new_socket, server) -> None:
    _, pull, endpoint = server
    push = new_socket(zmq.PUSH)
    push.connect(endpoint)  # no CURVE: the handshake fails before authentication
    push.send(b"plain")
    assert not pull.poll(REFUSED_WAIT_MS)


def test_client_with_a_wrong_server_key_does_not_connect(new_socket, keys, server) -> None:
    _, pull, endpoint = server
    push = new_socket(zmq.PUSH)
    Curve(keys).secure_client(push, zmq.curve_keypair()[0])
    push.connect(endpoint)
    push.send(b"x")
    assert not pull.poll(REFUSED_WAIT_MS)


def test_plain_loopback_is_unchanged_without_curve(new_socket) -> None:
    assert Curve.from_config(NetworkConfig()) is None
    pull, push = new_socket(zmq.PULL), new_socket(zmq.PUSH)
    endpoint = bind(pull)
    assert endpoint.startswith("tcp://127.0.0.1:")
    connect(push, endpoint)
    push.send(b"hello")
    assert pull.recv() == b"hello" and pull.get(zmq.MECHANISM) == zmq.NULL


# -- configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize("address", ["0.0.0.0", "*", "10.1.2.3", "::", "eth0"])
def test_non_loopback_without_keys_names_the_fix(address: str) -> None:
    with pytest.raises(ConfigError, match=r"trigger-sim keys DIR.*network\.curve_keys_dir"):
        NetworkConfig(bind_address=address)
    with pytest.raises(ConfigError, match="trigger-sim keys"):
        with_overrides(FarmConfig(), network={"bind_address": address})


def test_non_loopback_without_keys_in_a_file_names_file_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "farm.toml"
    path.write_text('[network]\nbind_address = "0.0.0.0"\n')
    with pytest.raises(ConfigError, match=rf"{path}.*trigger-sim keys DIR"):
        load_config(path)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.9.9.9", "::1", "localhost", "LOCALHOST"])
def test_loopback_needs_no_keys(address: str) -> None:
    assert not NetworkConfig(bind_address=address).curve_enabled


def test_curve_flag_needs_keys_and_turns_curve_on(keys: Path) -> None:
    with pytest.raises(ConfigError, match="trigger-sim keys"):
        NetworkConfig(curve=True)
    net = NetworkConfig(curve=True, curve_keys_dir=str(keys))
    assert net.curve_enabled and isinstance(Curve.from_config(net), Curve)
    assert NetworkConfig(bind_address="0.0.0.0", curve_keys_dir=str(keys)).curve_enabled


def test_tls_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="triton_tls is false"):
        NetworkConfig(triton_root_certificates="ca.pem")
    with pytest.raises(ConfigError, match="set both or neither"):
        NetworkConfig(triton_tls=True, triton_private_key="key.pem")
    with pytest.raises(ConfigError, match="inference.triton_url"):
        with_overrides(FarmConfig(), network={"triton_tls": True})


# -- Triton over TLS --------------------------------------------------------------------------

def test_tls_options_reach_the_triton_client(monkeypatch) -> None:
    seen: dict = {}

    class FakeClient:
        def __init__(self, **kwargs):
            seen.update(kwargs)

    monkeypatch.setattr(triton_client.grpcclient, "InferenceServerClient", FakeClient)
    from farm.worker import build_inference

    config = with_overrides(FarmConfig(), inference={"triton_url": "triton.example:8001"},
                            network={"triton_tls": True, "triton_root_certificates": "/etc/ca.pem",
                                     "triton_private_key": "/etc/client.key", "triton_certificate_chain": "/etc/client.pem"})
    build_inference(config, config.inference.triton_url)
    assert seen == {"url": "triton.example:8001", "ssl": True, "root_certificates": "/etc/ca.pem",
                    "private_key": "/etc/client.key", "certificate_chain": "/etc/client.pem"}
    seen.clear()
    build_inference(dataclasses.replace(config, network=NetworkConfig()), "localhost:8001")
    assert seen == {"url": "localhost:8001", "ssl": False, "root_certificates": None,
                    "private_key": None, "certificate_chain": None}
