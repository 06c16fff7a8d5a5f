"""Fault scenarios against the real farm: each injects one kind of fault and returns the
run summary with what was injected. The fault tests run them short; scripts/fault_suite.py
runs them long and prints, per fault, injected / events in / decided / lost.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.one_host import Farm, FarmHooks, run_farm
from farm.triton_server import TritonServer
from farm.readout import RANGES_PER_MESSAGE
from trigger_sim.recording import RecordReader, RecordWriter
from trigger_sim.simulation import event_fragments
from trigger_sim.config import MODEL_REPOSITORY, REPO_ROOT, FarmConfig, as_dict, load_config, with_overrides

SLOW_MODEL_REPOSITORY = REPO_ROOT / "tests" / "data" / "slow_model_repository"


@dataclass
class ScenarioResult:
    name: str
    injected: int
    summary: dict[str, Any]
    notes: dict[str, Any]


def base_config(triton_url: str | None = None, **sections: dict[str, Any]) -> FarmConfig:
    """The scenarios' farm; `triton_url`: a running server to use (None: the run starts its own)."""
    cfg = with_overrides(load_config(), readout={"rate_hz": 60.0}, worker={"count": 2},
                         builder={"build_timeout_ms": 300.0}, inference={"breaker_open_ms": 200.0})
    if triton_url:
        cfg = with_overrides(cfg, inference={"triton_url": triton_url})
    return with_overrides(cfg, **sections)


def _after(n_decided: int, action: Callable[[Farm], None]) -> Callable[[Farm], None]:
    done = []

    def tick(farm: Farm) -> None:
        if not done and farm.collector.ledger.decided >= n_decided:
            done.append(True)
            action(farm)
    return tick


def worker_killed(n_events: int, kills: int = 2, slow_server_url: str | None = None) -> ScenarioResult:
    """SIGKILL workers while each certainly holds an event: input far above what the workers
    decide (200 Hz against ~20 Hz: every event with jets waits >= 50 ms for the slow jet
    tagger) keeps complete events queued in the builder, which hands a worker its next event
    in the same turn as it takes its result. The kills come at 10 %, 30 %, ... of the events
    decided, while most are still to be decided. `slow_server_url`: a running server of the
    slow repository to use (the tests share one); none: one is started for this run."""
    kill_at = [max(int(n_events * (0.1 + 0.2 * k)), 1) for k in range(kills)]
    killed: list[str] = []
    undecided_at_kill: list[int] = []

    def tick(farm: Farm) -> None:
        if len(killed) < kills and farm.collector.ledger.decided >= kill_at[len(killed)]:
            index = len(killed) % len(farm.workers)
            undecided_at_kill.append(n_events - farm.collector.ledger.decided)
            os.kill(farm.workers[index].pid, signal.SIGKILL)
            killed.append(farm.identities[index])

    with contextlib.ExitStack() as stack:
        if slow_server_url is None:
            slow_server_url = stack.enter_context(TritonServer(SLOW_MODEL_REPOSITORY, start_timeout_s=90)).grpc_url
        # the slow repository serves the jet tagger only; its deadline lets it answer
        cfg = base_config(inference={"triton_url": slow_server_url, "timeout_ms": 400.0, "models": ("jet_tagger",)},
                          readout={"rate_hz": 200.0})
        summary = run_farm(cfg, n_events, output_dir=None, hooks=FarmHooks(on_tick=tick))
    return ScenarioResult("worker SIGKILL holding an event", len(killed), summary,
                          {"killed": killed, "undecided_at_kill": undecided_at_kill,
                           "retried": summary["builder"].get("retried_after_worker_loss", 0)})


def random_worker_kills(n_events: int, rate_hz: float = 30.0, mean_interval_s: float = 0.5, seed: int = 1,
                        output_dir: Path | None = None, min_age_s: float = 1.5,
                        triton_url: str | None = None) -> ScenarioResult:
    """SIGKILL a random worker at random moments (exponential intervals, from a thread of
    its own, so kills land anywhere in a worker's cycle: mid-step, between its result and
    its next request, while it reports) for the whole run. Only workers ready for at least
    `min_age_s` are candidates: a farm whose workers die while they start (imports, kernels,
    the model) decides nothing, which tests only the drain timeout. Run below and above
    saturation."""
    rng = random.Random(seed)
    killed: list[str] = []
    stop = threading.Event()

    def killer(farm: Farm) -> None:
        while not stop.wait(rng.expovariate(1.0 / mean_interval_s)):
            if farm.collector.ledger.decided >= n_events:
                return  # the run is over: a kill now would only race the shutdown
            now = time.monotonic()
            ready = dict(farm.roles.ready_since)
            old = [(i, p) for i, p in list(farm.workers.items()) if p.is_alive()
                   and farm.identities.get(i) not in killed and now - ready.get(farm.identities.get(i, ""), now) >= min_age_s]
            if not old:
                continue
            index, proc = rng.choice(old)
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
                killed.append(farm.identities[index])  # never picked twice

    thread: list[threading.Thread] = []

    def started(farm: Farm) -> None:
        thread.append(threading.Thread(target=killer, args=(farm,), name="killer", daemon=True))
        thread[0].start()

    cfg = base_config(triton_url, readout={"rate_hz": rate_hz}, run={"seed": seed})
    try:
        summary = run_farm(cfg, n_events, output_dir=output_dir, hooks=FarmHooks(on_started=started))
    finally:
        stop.set()
        for t in thread:
            t.join(5.0)
    notes: dict[str, Any] = {"killed": killed}
    if output_dir is not None:
        notes["streams"] = stream_file_check(summary, output_dir)
    return ScenarioResult(f"random worker SIGKILLs at {rate_hz:g} Hz", len(killed), summary, notes)


def worker_stalled(n_events: int, triton_url: str | None = None) -> ScenarioResult:
    """SIGSTOP a worker mid-run: alive but silent. The builder reports it once it has been
    silent past its budget plus the margin; the node agent kills it; it is replaced and the
    event it held is retried."""
    state: dict[str, Any] = {}

    def stall(farm: Farm) -> None:
        proc = farm.workers[0]
        os.kill(proc.pid, signal.SIGSTOP)
        state.update(stopped=farm.identities[0], at=time.monotonic())

    cfg = base_config(triton_url, worker={"stall_margin_ms": 1500.0})
    summary = run_farm(cfg, n_events, output_dir=None, hooks=FarmHooks(on_tick=_after(n_events // 4, stall)))
    return ScenarioResult("worker SIGSTOP (stalled)", int("stopped" in state), summary, state)


def looped_replay(n_events: int, recording_events: int = 50, id_stride: int = 3, rate_hz: float = 2000.0) -> ScenarioResult:
    """A small recording with sparse Level-1 ids (every `id_stride`-th) replayed in a loop
    for `n_events` Level-1 accepts, as fast as the farm takes them (pile-up 0, every model in
    the workers): replayed ids are rarely consecutive, so the readout reports one id range
    per event (except where one pass ends and the next begins), many chunks of them for a
    long run. Every accept must be counted and decided."""
    cfg = base_config(readout={"rate_hz": rate_hz}, physics={"pileup_mean": 0.0}, inference={"models": ()})
    with tempfile.TemporaryDirectory(prefix="trigger-sim-replay-") as tmp:
        path = Path(tmp) / "sparse.tsrec"
        with RecordWriter(path, cfg.run.run_number, "generated", as_dict(cfg)) as writer:
            for i in range(recording_events):
                l1_id = i * id_stride
                writer.write_event(l1_id, {}, event_fragments(cfg, l1_id, 0))
        summary = run_farm(cfg, n_events, replay=path, loop=True, output_dir=None)
    return ScenarioResult(f"looped replay of {recording_events} events, sparse ids", n_events, summary,
                          {"id_ranges": n_events, "id_chunks": -(-n_events // RANGES_PER_MESSAGE)})


def stream_file_check(summary: dict[str, Any], output_dir: Path) -> dict[str, dict[str, int]]:
    """Per stream file: records, distinct Level-1 ids, and what the summary says was written."""
    out = {}
    for stream, n in summary["streams"].items():
        ids = [r.l1_id for r in RecordReader(output_dir / f"{stream}.tsrec")]
        out[stream] = {"records": len(ids), "distinct": len(set(ids)), "summary": n}
    for stream, n in summary["debug_streams"].items():
        name = stream.split(":")[0]
        if name not in out and (output_dir / f"{name}.tsrec").exists():
            ids = [r.l1_id for r in RecordReader(output_dir / f"{name}.tsrec")]
            out[name] = {"records": len(ids), "distinct": len(set(ids)),
                         "summary": sum(v for k, v in summary["debug_streams"].items() if k.split(":")[0] == name)}
    return out


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


def local_servers_config(rate_hz: float, local_servers: int = 2) -> FarmConfig:
    """The scenarios' farm with `local_servers` servers it starts (and restarts) itself, and a
    breaker that reopens after 200 ms (`local_server_killed`'s farm, and the capacity model's
    validation of it runs without a kill)."""
    return base_config(readout={"rate_hz": rate_hz}, inference={"local_servers": local_servers, "breaker_open_ms": 200.0})


def local_server_killed(n_events: int, local_servers: int = 2, rate_hz: float = 40.0, kill_at: float = 0.3,
                        events_table: str | Path | None = None, **sections: dict[str, Any]) -> ScenarioResult:
    """SIGKILL one of the farm's own local servers (the tritonserver process alone, as an OOM
    kill would) once `kill_at` of the events are decided: the workers' pools send its calls
    to the other servers, and the farm restarts it on the same ports. `sections` override
    the configuration (e.g. inference={"models": ("jet_tagger",)}); `events_table`: where the
    run's per-event table goes (None: not written)."""
    state: dict[str, Any] = {}

    def kill(farm: Farm) -> None:
        server = farm.local_servers[0]
        state.update(killed=server.grpc_url, killed_at=time.monotonic(),
                     triton_before=farm.collector.inference_paths["triton"],
                     fallback_before=farm.collector.inference_paths["fallback"])
        os.kill(server.proc.pid, signal.SIGKILL)
        state["keeper"] = farm.keeper

    cfg = with_overrides(local_servers_config(rate_hz, local_servers), **sections)
    summary = run_farm(cfg, n_events, output_dir=None, hooks=FarmHooks(on_tick=_after(max(int(n_events * kill_at), 1), kill)),
                       events_table=events_table)
    keeper = state.pop("keeper", None)
    state["restart_s"] = list(keeper.restart_s) if keeper is not None else []
    state["restart_cpu_s"] = list(keeper.restart_cpu_s) if keeper is not None else []
    return ScenarioResult(f"one of {local_servers} local servers SIGKILLed", int("killed" in state), summary, state)


STUB_KILL_AT = 0.1  # stub_killed: the share of the events decided when the stubs die


def stub_killed(n_events: int) -> ScenarioResult:
    """SIGKILL the model's backend stub: the model still says READY; it must be reloaded.
    Both models' stubs die; reloading them one after the other (each unload and load) takes
    about 8 s on this host, so the stubs die early in the run (STUB_KILL_AT) and the run must
    last well beyond that for the farm to be seen back on Triton (at 60 Hz, 900 events leave
    13.5 s after the kill; with a quarter of 700, 8.8 s, the calls came back in the run's last
    tenth of a second, and once not at all)."""
    with TritonServer(MODEL_REPOSITORY) as server:
        state: dict[str, Any] = {}

        def kill_stub(farm: Farm) -> None:
            pids = server.stub_pids()
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            state.update(stubs_killed=len(pids), triton_before=farm.collector.inference_paths["triton"])

        cfg = base_config(inference={"triton_url": server.grpc_url})
        summary = run_farm(cfg, n_events, output_dir=None,
                           hooks=FarmHooks(on_tick=_after(max(int(n_events * STUB_KILL_AT), 1), kill_stub), server=server))
    return ScenarioResult("model stub SIGKILL", state.get("stubs_killed", 0), summary, state)


def readout_faults(n_events: int, fraction: float = 0.03, triton_url: str | None = None) -> ScenarioResult:
    """Corrupted, truncated, duplicated and foreign fragments from the readout."""
    cfg = base_config(triton_url, faults={"corrupt_fraction": fraction, "truncate_fraction": fraction,
                              "duplicate_fraction": fraction, "foreign_fraction": fraction})
    summary = run_farm(cfg, n_events, output_dir=None)
    injected = summary["level1"]["faults_injected"]
    return ScenarioResult("bad fragments", sum(injected.values()), summary, injected)


def silent_source(n_events: int, triton_url: str | None = None) -> ScenarioResult:
    """A readout source stops sending halfway: its events go to MissingData."""
    after = n_events // 2
    cfg = base_config(triton_url, faults={"silent_source": 1, "silent_after_events": after})
    summary = run_farm(cfg, n_events, output_dir=None)
    return ScenarioResult("silent readout source", n_events - after, summary, {"silent_after": after})


def overload(n_events: int, rate_hz: float = 3000.0, triton_url: str | None = None) -> ScenarioResult:
    """Input far above saturation: dead time grows, memory stays bounded, nothing is lost."""
    cfg = base_config(triton_url, readout={"rate_hz": rate_hz})
    summary = run_farm(cfg, n_events, output_dir=None)
    return ScenarioResult(f"overload at {rate_hz:g} Hz", summary["level1"]["vetoed_busy"], summary, {})


SCENARIOS = {
    "worker_killed": worker_killed,
    "random_kills_below": lambda n: random_worker_kills(n, rate_hz=30.0),
    "random_kills_above": lambda n: random_worker_kills(n, rate_hz=150.0, seed=2),
    "worker_stalled": worker_stalled,
    "looped_replay": looped_replay,
    "triton_killed": triton_killed,
    "stub_killed": stub_killed,
    "local_server_killed": local_server_killed,
    "readout_faults": readout_faults,
    "silent_source": silent_source,
    "overload": overload,
}
