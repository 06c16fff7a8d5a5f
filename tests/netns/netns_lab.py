"""Emulated hosts on one machine: Linux network namespaces joined by veth links to a bridge.

`NetnsLab(["readout", "node1", ...])` as a context manager makes, with a random suffix so
parallel or leftover runs never collide:

- a "switch" namespace holding a bridge (nothing is added to the machine's own network);
- per host, a namespace whose `eth0` is one end of a veth pair, the other end on the bridge,
  an address from a random private /24 (inside these namespaces only) and loopback up.

`popen(host, argv)` starts a process in a host's namespace (`ip netns exec`), `link(host,
False)` cuts a host's link (inside its namespace), `close()` (also on any failure) stops
every process it started, then any other process still inside its namespaces, and deletes
the namespaces, which removes their interfaces. Needs root or CAP_NET_ADMIN: `skip_reason()`
says why not, for a test's skip.

There is no `tc netem` on every kernel and no ping here: reachability is a TCP connect.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence

PREFIX = "tsim"
CMD_TIMEOUT_S = 10.0


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=CMD_TIMEOUT_S, check=check)


def skip_reason() -> str | None:
    """Why namespaces cannot be made here (for pytest.skip), or None when they can."""
    if shutil.which("ip") is None:
        return "the `ip` tool (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (or CAP_NET_ADMIN); run the test as root, as CI does"
    probe = f"{PREFIX}-probe-{secrets.token_hex(3)}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip() or made.returncode} (needs CAP_NET_ADMIN)"
    _ip("netns", "del", probe, check=False)
    return None


class NetnsLab:
    """Hosts in network namespaces on one private /24; removed by `close()`."""

    def __init__(self, hosts: Sequence[str]):
        if len(set(hosts)) != len(hosts) or not hosts or len(hosts) > 200:
            raise ValueError(f"give 1 to 200 distinct host names, got {list(hosts)}")
        self.suffix = secrets.token_hex(3)
        self.hosts = list(hosts)
        self.switch = f"{PREFIX}-{self.suffix}-sw"
        self.namespaces = {h: f"{PREFIX}-{self.suffix}-{i}" for i, h in enumerate(hosts)}
        net = secrets.randbelow(50 * 256)
        self.subnet = f"10.{200 + net // 256}.{net % 256}"
        self.addresses = {h: f"{self.subnet}.{i + 1}" for i, h in enumerate(hosts)}
        self.processes: list[subprocess.Popen] = []
        self._made: list[str] = []

    # -- set-up and teardown ---------------------------------------------------------
    def __enter__(self) -> NetnsLab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        _ip("netns", "add", self.switch)
        self._made.append(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for i, host in enumerate(self.hosts):
            ns = self.namespaces[host]
            _ip("netns", "add", ns)
            self._made.append(ns)
            outside, inside = f"t{self.suffix}s{i}", f"t{self.suffix}h{i}"
            # made inside the host's namespace, so no interface ever exists in the machine's own
            _ip("-n", ns, "link", "add", inside, "type", "veth", "peer", "name", outside, "netns", self.switch)
            _ip("-n", ns, "link", "set", inside, "name", "eth0")
            _ip("-n", ns, "addr", "add", f"{self.addresses[host]}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", self.switch, "link", "set", outside, "master", "br0")
            _ip("-n", self.switch, "link", "set", outside, "up")

    def close(self) -> None:
        """Stop what runs in the lab and delete its namespaces (safe to call twice)."""
        for p in self.processes:
            _stop(p)
        self.processes.clear()
        for ns in self._made:
            for pid in _pids(ns):  # anything a started process left behind, in our namespaces only
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for ns in reversed(self._made):
            _ip("netns", "del", ns, check=False)
        self._made.clear()

    # -- use ---------------------------------------------------------------------------
    def address(self, host: str) -> str:
        return self.addresses[host]

    def exec_argv(self, host: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[host], *argv]

    def popen(self, host: str, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start `argv` in `host`'s namespace; it is stopped by `close()`."""
        p = subprocess.Popen(self.exec_argv(host, argv), start_new_session=True, **kwargs)
        self.processes.append(p)
        return p

    def run(self, host: str, argv: Sequence[str], timeout_s: float = 30.0) -> subprocess.CompletedProcess:
        return subprocess.run(self.exec_argv(host, argv), capture_output=True, text=True, timeout=timeout_s)

    def link(self, host: str, up: bool) -> None:
        """Bring `host`'s link down (cut from every other host) or back up, inside its namespace."""
        _ip("-n", self.namespaces[host], "link", "set", "eth0", "up" if up else "down")

    def exists(self) -> list[str]:
        """This lab's namespaces that still exist (for tests of the teardown)."""
        listed = _ip("netns", "list", check=False).stdout.split()
        return [ns for ns in [self.switch, *self.namespaces.values()] if ns in listed]


def _pids(ns: str) -> list[int]:
    out = _ip("netns", "pids", ns, check=False).stdout.split()
    return [int(p) for p in out if p.isdigit()]


def _stop(p: subprocess.Popen, timeout_s: float = 5.0) -> None:
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)  # its own session: the process and its children
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=5.0)
