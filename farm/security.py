"""ZeroMQ CURVE for farm sockets: key pairs, encryption, and which clients may connect.

`make_keys(DIR)` (the `trigger-sim keys` command) writes one server and one client key pair
in ZeroMQ's certificate format, and authorises the client by copying its public key into
`DIR/authorized_clients/`. Every socket that binds is a CURVE server (`Curve.secure_server`);
each process that binds runs one ZAP authenticator thread in its ZeroMQ context, which lets
in only client public keys found in `authorized_clients/` (read when it starts) and counts
the distinct keys it refused. Every connecting socket is a CURVE client (`secure_client`)
that checks the server's public key. Traffic on a CURVE connection is encrypted and
authenticated; a peer without the server's key or without CURVE fails the handshake in
libzmq before the authenticator is asked, so it is refused but not counted.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from trigger_sim.config import NetworkConfig
from trigger_sim.errors import ConfigError, TriggerSimError

SERVER, CLIENT = "server", "client"
AUTHORIZED_DIR = "authorized_clients"
MAX_REMEMBERED_KEYS = 4096  # refused keys remembered to count each once; beyond, each attempt counts


def key_files(directory: str | Path) -> list[Path]:
    """The four files `make_keys` writes (public and secret, server and client)."""
    d = Path(directory)
    return [d / f"{name}{ext}" for name in (SERVER, CLIENT) for ext in (".key", ".key_secret")]


def make_keys(directory: str | Path) -> list[Path]:
    """Create the server and client key pairs in `directory`; never overwrites a key file."""
    d = Path(directory)
    existing = [p for p in [*key_files(d), d / AUTHORIZED_DIR / f"{CLIENT}.key"] if p.exists()]
    if existing:
        raise TriggerSimError(f"{existing[0]} exists: keys are never overwritten; choose a new folder "
                              "or delete the old keys first (clients holding them will be refused)")
    (d / AUTHORIZED_DIR).mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in key_files(d):  # created empty and private first, so secrets are never readable by others
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for name in (SERVER, CLIENT):
        zmq.auth.create_certificates(d, name)
    for path in key_files(d)[::2]:
        path.chmod(0o644)
    authorized = d / AUTHORIZED_DIR / f"{CLIENT}.key"
    shutil.copyfile(d / f"{CLIENT}.key", authorized)
    return [*key_files(d), authorized]


def _load(path: Path, want_secret: bool) -> tuple[bytes, bytes | None]:
    fix = f"run `trigger-sim keys {path.parent}` and set network.curve_keys_dir to that folder"
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot read the CURVE key ({err}); {fix}") from err
    if want_secret and not secret:
        raise ConfigError(f"{path}: no secret key in this file; {fix}")
    return public, secret


class _KeyCheck:
    """ZAP credentials provider: known client keys pass; refused keys are counted."""

    def __init__(self, authorized: set[bytes]):
        self.authorized = authorized
        self.refused: set[bytes] = set()
        self.refused_peers = 0
        self.lock = threading.Lock()

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.authorized:
            return True
        with self.lock:
            if key not in self.refused:
                self.refused_peers += 1
                if len(self.refused) < MAX_REMEMBERED_KEYS:
                    self.refused.add(key)
        return False


class Curve:
    """The CURVE keys of one process, and its authenticator once it binds a socket."""

    def __init__(self, keys_dir: str | Path):
        self.keys_dir = Path(keys_dir)
        if not self.keys_dir.is_dir():
            raise ConfigError(f"network.curve_keys_dir {str(self.keys_dir)!r} is not a folder: "
                              f"run `trigger-sim keys {self.keys_dir}` to create it with key pairs")
        self.server_public_key, _ = _load(self.keys_dir / f"{SERVER}.key", want_secret=False)
        self.client_public_key, self.client_secret_key = _load(self.keys_dir / f"{CLIENT}.key_secret", want_secret=True)
        self._auth: ThreadAuthenticator | None = None
        self._check: _KeyCheck | None = None

    @classmethod
    def from_config(cls, network: NetworkConfig) -> Curve | None:
        """A Curve if the configuration turns CURVE on, else None (plain TCP on loopback)."""
        return cls(network.curve_keys_dir) if network.curve_enabled else None

    @property
    def refused_peers(self) -> int:
        """Distinct client keys the authenticator refused so far."""
        if self._check is None:
            return 0
        with self._check.lock:
            return self._check.refused_peers

    def authorized_keys(self) -> set[bytes]:
        folder = self.keys_dir / AUTHORIZED_DIR
        try:
            keys = set(zmq.auth.load_certificates(folder))
        except (OSError, ValueError) as err:
            raise ConfigError(f"{folder}: cannot read authorised client keys ({err}); "
                              f"run `trigger-sim keys DIR` or copy the clients' public .key files there") from err
        if not keys:
            raise ConfigError(f"{folder}: no authorised client keys (*.key): every client would be refused; "
                              "copy the clients' public .key files there")
        return keys

    def secure_server(self, sock: zmq.Socket) -> None:
        """Make `sock` a CURVE server; clients are checked by this process's authenticator."""
        self._start_authenticator(sock.context)
        _, secret = _load(self.keys_dir / f"{SERVER}.key_secret", want_secret=True)
        sock.curve_publickey = self.server_public_key
        sock.curve_secretkey = secret
        sock.curve_server = True

    def secure_client(self, sock: zmq.Socket, server_public_key: bytes | None = None) -> None:
        """Make `sock` a CURVE client with this folder's client keys (before it connects)."""
        sock.curve_publickey = self.client_public_key
        sock.curve_secretkey = self.client_secret_key
        sock.curve_serverkey = server_public_key or self.server_public_key

    def _start_authenticator(self, ctx: zmq.Context) -> None:
        if self._auth is not None:
            if self._auth.context is not ctx:
                raise TriggerSimError("CURVE servers of one process must share one ZeroMQ context (one authenticator)")
            return
        check = _KeyCheck(self.authorized_keys())
        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_curve_callback("*", credentials_provider=check)
        self._auth, self._check = auth, check

    def close(self) -> None:
        """Stop the authenticator (before its context is terminated)."""
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


def check_triton_tls_files(network: NetworkConfig) -> None:
    """Fail before the farm starts if a configured TLS file for Triton cannot be read."""
    for key in ("triton_root_certificates", "triton_private_key", "triton_certificate_chain"):
        path = getattr(network, key)
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"network.{key} = {path!r}: file not found or not readable; give the PEM file's path")
