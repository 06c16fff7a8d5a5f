"""SIGTERM / SIGINT: the farm drains what is in flight, writes complete output files and its
summary, and leaves no processes or shared-memory segments behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trigger_sim.recording import RecordReader

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _children(pid: int) -> set[int]:
    out = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.add(int(proc.name))
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_and_cleans_up(tmp_path, sig):
    out, streams = tmp_path / "out.json", tmp_path / "streams"
    cmd = [sys.executable, "-m", "farm", "run", "--duration", "120", "--rate", "60", "--workers", "2",
           "--json", str(out), "--output", str(streams), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(streams.glob("*.tsrec")) and time.monotonic() < deadline:  # events are flowing
            time.sleep(0.2)
        time.sleep(1.0)
        children = _children(proc.pid)
        assert children, "the farm should have started its processes"
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads(out.read_text())
    ev = summary["events"]
    assert ev["l1_count_known"] and ev["l1_accepted"] > 0
    assert ev["lost"] == 0 and ev["accepted"] + ev["rejected"] + ev["debug"] == ev["l1_accepted"]
    assert any(p.startswith(f"interrupted by {sig.name}") for p in summary["problems"])
    for stream, n in summary["streams"].items():
        reader = RecordReader(streams / f"{stream}.tsrec")
        assert reader.truncated_at is None and len(list(reader)) == n
    time.sleep(0.5)
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)]
    prefix = summary["inference"]["server_shm_prefix"]
    assert prefix, "the farm started its own server"
    assert not list(Path("/dev/shm").glob(prefix + "*")), "the farm's Triton left shared memory behind"
    client_prefix = summary["inference"]["client_shm_prefix"]
    assert client_prefix and not list(Path("/dev/shm").glob(client_prefix + "*")), "the workers left shared memory behind"


def _state(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}") / "status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "gone"
