"""A farm across emulated hosts for tests: topology and configuration files, node agents
started in a lab's namespaces, run control run in the readout host's namespace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from farm.security import make_keys
from netns_lab import NetnsLab

REPO = Path(__file__).resolve().parents[2]
HOSTS = ["daq", "node1", "node2", "gpu"]  # run control and the readout share "daq"
HOSTS_NO_TRITON = ["daq", "node1", "node2"]  # the models run in the workers (no server to start: shorter tests)
HOSTS_SEPARATE_READOUT = ["daq", "readout", "node1", "node2"]  # the readout on a host of its own
ENTRY = [sys.executable, "-m", "farm"]  # the trigger-sim command, run from this checkout
CONTROL_PORT = 5570
TRITON_PORT = 8001


def write_files(lab: NetnsLab, folder: Path, workers: int = 1, rate_hz: float = 150.0, pileup: float = 5.0,
                heartbeat_timeout_s: float = 2.0) -> Path:
    """Keys, a farm configuration and the topology of the lab's hosts (named as in `HOSTS`,
    `HOSTS_NO_TRITON` or `HOSTS_SEPARATE_READOUT`); returns the topology's path."""
    make_keys(folder / "keys")
    (folder / "farm.toml").write_text(textwrap.dedent(f"""
        menu = "{REPO / 'configs' / 'menu.toml'}"
        [physics]
        pileup_mean = {pileup}
        [readout]
        rate_hz = {rate_hz}
        pattern = "constant"
        [output]
        write_streams = false
        """))
    a = lab.address
    separate = "readout" in lab.hosts
    readout_host = f"""
        [hosts.readout]
        address = "{a('readout')}"
        readout = true
        """ if separate else ""
    triton_host = f"""
        [hosts.gpu]
        address = "{a('gpu')}"
        triton_grpc_port = {TRITON_PORT}
        """ if "gpu" in lab.hosts else ""
    (folder / "topology.toml").write_text(textwrap.dedent(f"""
        [farm]
        config = "farm.toml"
        curve_keys_dir = "keys"
        control_port = {CONTROL_PORT}
        heartbeat_timeout_s = {heartbeat_timeout_s}

        [hosts.daq]
        address = "{a('daq')}"
        run_control = true
        readout = {"false" if separate else "true"}
        {readout_host}
        [hosts.node1]
        address = "{a('node1')}"
        workers = {workers}

        [hosts.node2]
        address = "{a('node2')}"
        workers = {workers}
        {triton_host}"""))
    return folder / "topology.toml"


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    out = dict(os.environ, PYTHONPATH=str(REPO))
    out.update(extra or {})
    return out


def start_agents(lab: NetnsLab, topology: Path, logs: Path, clock_offsets_ms: dict[str, float] | None = None) -> dict:
    """One node agent per host, in its namespace; output to logs/<host>.log."""
    procs = {}
    for host in lab.hosts:
        extra = {"TRIGGER_SIM_TEST_CLOCK_OFFSET_MS": str(clock_offsets_ms[host])} if clock_offsets_ms and host in clock_offsets_ms else {}
        log = open(logs / f"{host}.log", "wb")
        procs[host] = lab.popen(host, [*ENTRY, "node", "--topology", str(topology), "--host", host],
                                stdout=log, stderr=subprocess.STDOUT, env=env(extra))
    return procs


def run_control(lab: NetnsLab, topology: Path, n_events: int, out: Path, timeout_s: float,
                events_table: Path | None = None) -> subprocess.Popen:
    """Start run control in the readout host's namespace; returns its process (JSON summary to
    `out`; the per-event table to `events_table` if given)."""
    log = open(out.with_suffix(".log"), "wb")
    table = ["--events-table", str(events_table)] if events_table is not None else []
    return lab.popen("daq", [*ENTRY, "run", "--topology", str(topology), "--events", str(n_events),
                             "--json", str(out), *table], stdout=log, stderr=subprocess.STDOUT, env=env())


def wait_for_state(log: Path, state: str, timeout_s: float, rc: subprocess.Popen) -> None:
    """Until run control's log says the run reached `state` (it prints "run control: STATE")."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and rc.poll() is None:
        if log.exists() and f"run control: {state}" in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"run control did not reach {state} within {timeout_s} s: {log.read_text(errors='replace')[-2000:]}")


def read_summary(out: Path) -> dict:
    return json.loads(out.read_text())
