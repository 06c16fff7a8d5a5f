"""Fault scenarios against the real farm: each injects one kind of fault and returns the
run summary with what was injected. The fault tests run them short; scripts/fault_suite.py
runs them long and prints, per fault, injected / events in / decided / lost.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.supervisor import Farm, FarmHooks, run_farm
from farm.triton_server import TritonServer
from trigger_sim.config import MODEL_REPOSITORY, REPO_ROOT, FarmConfig, load_config, with_overrides

SLOW_MODEL_REPOSITORY = REPO_ROOT / "tests" / "data" / "slow_model_repository"


@dataclass
class ScenarioResult:
    name: str
    injected: int
    summary: dict[str, Any]
    notes: dict[str, Any]


def base_config(**sections: dict[str, Any]) -> FarmConfig:
    cfg = with_overrides(load_config(), readout={"rate_hz": 60.0}, worker={"count": 2},
                         builder={"build_timeout_ms": 300.0}, inference={"breaker_open_ms": 200.0})
    return with_overrides(cfg, **sections)


def _stub_pids(server: TritonServer) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != (server.proc.pid if server.proc else -1):
            try:
                if server.shm_prefix.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def _after(n_decided: int, action: Callable[[Farm], None]) -> Callable[[Farm], None]:
    done = []

    def tick(farm: Farm) -> None:
        if not done and farm.collector.ledger.decided >= n_decided:
            done.append(True)
            action(farm)
    return tick


def worker_killed(n_events: int, kills: int = 1) -> ScenarioResult:
    """SIGKILL a worker while events flow (slow model: workers are busy most of the time)."""
    with TritonServer(SLOW_MODEL_REPOSITORY) as server:
        killed: list[str] = []
        step = max(n_events // (kills + 1), 1)

        def tick(farm: Farm) -> None:
            if len(killed) < kills and farm.collector.ledger.decided >= step * (len(killed) + 1):
                index = len(killed) % len(farm.workers)
                proc = farm.workers[index]
                if proc.is_alive():
                    os.kill(proc.pid, signal.SIGKILL)
                    killed.append(farm.identities[index])

        # ~40 events/s with two workers on the 50 ms model: run below that, workers busy
        cfg = base_config(inference={"triton_url": server.grpc_url, "timeout_ms": 200.0, "models": ("jet_tagger",)},
                          readout={"rate_hz": 30.0})  # the slow repository serves the jet tagger only
        summary = run_farm(cfg, n_events, output_dir=None, hooks=FarmHooks(on_tick=tick))
    return ScenarioResult("worker SIGKILL", len(killed), summary, {"killed": killed})


def triton_killed(n_events: int, outage_s: float = 1.5) -> ScenarioResult:
    """SIGKILL the server mid-run, restart it on the same ports after `outage_s`."""
    with TritonServer(MODEL_REPOSITORY) as server:
        state: dict[str, Any] = {}

        def tick(farm: Farm) -> None:
            decided = farm.collector.ledger.decided
            if "killed_at" not in state and decided >= n_events // 4:
                server.kill()
                state.update(killed_at=time.monotonic(), triton_before=farm.collector.inference_paths["triton"])
            elif "killed_at" in state and "restarted" not in state and time.monotonic() - state["killed_at"] > outage_s:
                server.start(same_ports=True)
                state.update(restarted=True, triton_at_restart=farm.collector.inference_paths["triton"])

        cfg = base_config(inference={"triton_url": server.grpc_url})
        summary = run_farm(cfg, n_events, output_dir=None, hooks=FarmHooks(on_tick=tick, server=server))
    return ScenarioResult("Triton server SIGKILL + restart", int("killed_at" in state), summary, state)


def stub_killed(n_events: int) -> ScenarioResult:
    """SIGKILL the model's backend stub: the model still says READY; it must be reloaded."""
    with TritonServer(MODEL_REPOSITORY) as server:
        state: dict[str, Any] = {}

        def kill_stub(farm: Farm) -> None:
            pids = _stub_pids(server)
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            state.update(stubs_killed=len(pids), triton_before=farm.collector.inference_paths["triton"])

        cfg = base_config(inference={"triton_url": server.grpc_url})
        summary = run_farm(cfg, n_events, output_dir=None, hooks=FarmHooks(on_tick=_after(n_events // 4, kill_stub), server=server))
    return ScenarioResult("model stub SIGKILL", state.get("stubs_killed", 0), summary, state)


def readout_faults(n_events: int, fraction: float = 0.03) -> ScenarioResult:
    """Corrupted, truncated, duplicated and foreign fragments from the readout."""
    cfg = base_config(faults={"corrupt_fraction": fraction, "truncate_fraction": fraction,
                              "duplicate_fraction": fraction, "foreign_fraction": fraction})
    summary = run_farm(cfg, n_events, output_dir=None)
    injected = summary["level1"]["faults_injected"]
    return ScenarioResult("bad fragments", sum(injected.values()), summary, injected)


def silent_source(n_events: int) -> ScenarioResult:
    """A readout source stops sending halfway: its events go to MissingData."""
    after = n_events // 2
    cfg = base_config(faults={"silent_source": 1, "silent_after_events": after})
    summary = run_farm(cfg, n_events, output_dir=None)
    return ScenarioResult("silent readout source", n_events - after, summary, {"silent_after": after})


def overload(n_events: int, rate_hz: float = 3000.0) -> ScenarioResult:
    """Input far above saturation: dead time grows, memory stays bounded, nothing is lost."""
    cfg = base_config(readout={"rate_hz": rate_hz})
    summary = run_farm(cfg, n_events, output_dir=None)
    return ScenarioResult(f"overload at {rate_hz:g} Hz", summary["level1"]["vetoed_busy"], summary, {})


SCENARIOS = {
    "worker_killed": worker_killed,
    "triton_killed": triton_killed,
    "stub_killed": stub_killed,
    "readout_faults": readout_faults,
    "silent_source": silent_source,
    "overload": overload,
}
