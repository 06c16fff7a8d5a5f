"""SIGTERM / SIGINT: the farm drains what is in flight, writes complete output files and its
summary, and leaves no processes or shared-memory segments behind. A second signal stops
the drain: the farm then stops at once, in order, and every event still undecided leaves
to a debug stream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient

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


def _descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _alive(pids: set[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)]


def _kill_leftovers(proc: subprocess.Popen, pids: set[int]) -> None:
    """After a failed check: end the farm and whatever it started (by pid), so nothing hangs on."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)
    for pid in _alive(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_and_cleans_up(tmp_path, sig):
    out, streams = tmp_path / "out.json", tmp_path / "streams"
    cmd = [sys.executable, "-m", "farm", "run", "--duration", "120", "--rate", "60", "--workers", "2",
           "--json", str(out), "--output", str(streams), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while not any(streams.glob("*.tsrec")) and time.monotonic() < deadline:  # events are flowing
            time.sleep(0.2)
        time.sleep(1.0)
        children = _descendants(proc.pid)
        assert children, "the farm should have started its processes"
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
        time.sleep(0.5)
        left_running = _alive(children)  # before the clean-up below, which would hide them
    finally:
        _kill_leftovers(proc, children)
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads(out.read_text())
    ev = summary["events"]
    assert ev["l1_count_known"] and ev["l1_accepted"] > 0
    assert ev["lost"] == 0 and ev["accepted"] + ev["rejected"] + ev["debug"] == ev["l1_accepted"]
    # an operator's stop: reported as such, not as a problem (the drain finished)
    assert summary["interrupted_by"] == sig.name and not summary["problems"], summary["problems"]
    for stream, n in summary["streams"].items():
        reader = RecordReader(streams / f"{stream}.tsrec")
        assert reader.truncated_at is None and len(list(reader)) == n
    assert not left_running, "farm processes left running"
    prefix = summary["inference"]["server_shm_prefix"]
    assert prefix, "the farm started its own server"
    assert not list(Path("/dev/shm").glob(prefix + "*")), "the farm's Triton left shared memory behind"
    client_prefix = summary["inference"]["client_shm_prefix"]
    assert client_prefix and not list(Path("/dev/shm").glob(client_prefix + "*")), "the workers left shared memory behind"


# A drain that takes long: complete events may queue by the thousand in the builder (input far
# above what the workers decide piles up there instead of becoming Level-1 dead time), and
# every event with jets waits >= 50 ms for the slow jet tagger (the edge classifier runs in
# the workers: the slow repository serves the jet tagger only).
SLOW_DRAIN_CONFIG = """\
[builder]
max_waiting = 5000

[inference]
models = ["jet_tagger"]
timeout_ms = 400.0
"""
BACKLOG_S = 6.0  # input at 150 Hz for this long, the two workers deciding ~20 Hz: hundreds queued


@pytest.fixture
def slow_server(slow_triton_server):
    """The session's tritonserver whose jet tagger answers after 50 ms (tests/conftest.py): this
    test leaves nothing on it (it checks that no region of its workers stays registered)."""
    return slow_triton_server


def test_second_signal_stops_the_drain(tmp_path, slow_server):
    config = tmp_path / "slow_drain.toml"
    config.write_text(SLOW_DRAIN_CONFIG)
    out, streams = tmp_path / "out.json", tmp_path / "streams"
    cmd = [sys.executable, "-m", "farm", "run", "--config", str(config), "--duration", "600", "--rate", "150",
           "--workers", "2", "--triton-url", slow_server.grpc_url, "--json", str(out), "--output", str(streams), "--quiet"]
    log = tmp_path / "farm.log"  # a file, not a pipe: a process left holding it cannot block the wait
    with open(log, "w") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while not any(streams.glob("*.tsrec")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)  # events are being decided
        time.sleep(BACKLOG_S)  # ... far fewer than arrive: a backlog builds up in the builder
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        children = _descendants(proc.pid)
        assert children, "the farm should have started its processes"
        proc.send_signal(signal.SIGINT)
        time.sleep(1.5)
        assert proc.poll() is None, "the first signal should start a drain, not end the run"
        second = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        exit_s = time.monotonic() - second
        time.sleep(0.5)
        left_running = _alive(children)  # before the clean-up below, which would hide them
    finally:
        _kill_leftovers(proc, children)
    stderr = log.read_text(errors="replace")
    # not killed by the signal: the farm stopped itself, in order, and wrote its summary
    assert proc.returncode == 1, (proc.returncode, stderr[-3000:])  # a cut drain: not known complete
    summary = json.loads(out.read_text())
    ev = summary["events"]
    diagnosis = (ev, summary["problems"], summary["debug_streams"], summary["builder"], stderr[-2000:])
    assert summary["interrupted_by"] == "SIGINT", diagnosis
    assert any(p.startswith("stopped by a second signal") for p in summary["problems"]), diagnosis

    # Every Level-1 accept has one outcome or is reported lost, none counted twice; what the
    # drain had still to do when it was cut goes to NotProcessed (or would be reported lost).
    assert ev["l1_count_known"] and ev["l1_accepted"] > 0, diagnosis
    assert ev["accepted"] + ev["rejected"] + ev["debug"] + ev["lost"] == ev["l1_accepted"], diagnosis
    assert ev["duplicate_results_refused"] == 0, diagnosis
    not_processed = sum(n for k, n in summary["debug_streams"].items() if k.startswith("NotProcessed"))
    undecided = not_processed + ev["lost"]
    assert undecided >= 50, f"the second signal should have cut a long drain short: {diagnosis}"

    # Promptly: well before the drain would have finished at the rate the workers decided
    # events (their decisions over the span of all decisions, from the summary's throughput).
    span_s = (ev["accepted"] + ev["rejected"] + ev["debug"]) / summary["throughput"]["decided_per_s"]
    worker_rate_hz = (ev["accepted"] + ev["rejected"]) / span_s
    drain_s = undecided / worker_rate_hz
    assert exit_s < 20.0 and exit_s < drain_s / 3, (exit_s, drain_s, undecided, worker_rate_hz)

    # The output files: complete, each event at most once per file, and an event is in one
    # debug stream or in physics streams, never both; the counts match the summary.
    ids_per_file = {}
    for path in sorted(streams.glob("*.tsrec")):
        reader = RecordReader(path)
        ids = [record.l1_id for record in reader]
        assert reader.truncated_at is None, path
        assert len(ids) == len(set(ids)), f"{path.name}: an event written twice"
        ids_per_file[path.stem] = set(ids)
    physics = {s: ids for s, ids in ids_per_file.items() if s in summary["streams"]}
    debug = {s: ids for s, ids in ids_per_file.items() if s not in summary["streams"]}
    assert {s: len(ids) for s, ids in physics.items()} == summary["streams"]
    debug_counts: dict[str, int] = {}
    for key, n in summary["debug_streams"].items():
        debug_counts[key.split(":")[0]] = debug_counts.get(key.split(":")[0], 0) + n
    assert {s: len(ids) for s, ids in debug.items()} == debug_counts
    assert len(debug.get("NotProcessed", ())) == not_processed
    all_debug = [i for ids in debug.values() for i in ids]
    assert len(all_debug) == len(set(all_debug)) == ev["debug"], "an event in two debug streams"
    assert not set(all_debug) & set().union(*physics.values()), "an event both accepted and in a debug stream"
    assert len(set().union(*physics.values())) == ev["accepted"]

    # Nothing left behind: no farm process, no shared-memory file, no registration on the server.
    assert not left_running, "farm processes left running"
    client_prefix = summary["inference"]["client_shm_prefix"]
    assert client_prefix and not list(Path("/dev/shm").glob(client_prefix + "*")), "the workers left shared memory behind"
    client = grpcclient.InferenceServerClient(slow_server.grpc_url)
    try:
        regions = client.get_system_shared_memory_status(as_json=True).get("regions", {})
    finally:
        client.close()
    names = regions.keys() if isinstance(regions, dict) else [r["name"] for r in regions]
    assert not [n for n in names if n.startswith(client_prefix)], "the workers' regions left registered with the server"


def _state(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}") / "status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "gone"
