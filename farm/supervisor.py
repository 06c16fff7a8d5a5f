"""Supervisor: starts the farm (Triton, builder, workers, readout), collects, stops it.

Order: the inference server (or the given URL), then the collector socket (here), the
builder, the workers (each warms its kernels and checks the model before asking for
work), and last the readout, so no event waits on start-up. The run ends when every
Level-1 accept has an outcome, or when the drain timeout passes (the rest are lost and
reported). Every process started here is stopped here.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import zmq

from farm.builder import run_builder
from farm.collector import Collector
from farm.readout import run_readout
from farm.summary import summarise
from farm.triton_server import TritonServer
from farm.worker import run_worker
from trigger_sim import clock
from trigger_sim.config import MODEL_REPOSITORY, FarmConfig
from trigger_sim.errors import TriggerSimError
from trigger_sim.kernels import warm_up
from trigger_sim.menu import load_menu

START_TIMEOUT_S = 120.0
Progress = Callable[[dict[str, Any]], None]


def _wait_ready(ready: multiprocessing.Queue, procs: list, n: int, timeout_s: float) -> list[tuple[str, dict]]:
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n:
        for p in procs:
            if p.exitcode is not None:
                raise TriggerSimError(f"process {p.name} exited with code {p.exitcode} during start-up")
        try:
            out.append(ready.get(timeout=0.2))
        except queue.Empty:
            if time.monotonic() > deadline:
                raise TriggerSimError(f"farm processes not ready after {timeout_s:.0f} s") from None
    return out


def _stop_process(p: multiprocessing.Process, timeout_s: float = 5.0) -> None:
    p.join(timeout_s)
    if p.is_alive():
        p.terminate()
        p.join(2.0)
    if p.is_alive():
        p.kill()
        p.join(2.0)


def drain_timeout_s(config: FarmConfig) -> float:
    """How long after the last Level-1 accept an event may still be on its way."""
    return (config.builder.build_timeout_ms + 2 * config.worker.budget_ms) / 1e3 + 5.0


def run_farm(config: FarmConfig, n_events: int | None = None, duration_s: float | None = None,
             progress: Progress | None = None, output_dir: str | Path | None = "auto") -> dict[str, Any]:
    """Run the whole farm and return its summary (see `farm.summary`)."""
    if n_events is None and duration_s is None:
        raise ValueError("give a number of events or a duration")
    load_menu(config.menu)  # fail now, with the file named, not in every worker
    wall_start = time.monotonic()
    if output_dir == "auto":
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        output_dir = Path(config.output.directory) / f"run{config.run.run_number:06d}-{stamp}"
    if output_dir is not None and config.output.write_streams:
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
    warm_up()  # compile (or load) the kernels once here, so workers find them cached
    mp = multiprocessing.get_context("spawn")
    stop = mp.Event()
    ready = mp.Queue()
    procs: list[multiprocessing.Process] = []
    ctx = zmq.Context()
    collector = None
    with contextlib.ExitStack() as cleanup:
        if config.inference.triton_url:
            triton_url, mode = config.inference.triton_url, "external"
        else:
            server = cleanup.enter_context(TritonServer(MODEL_REPOSITORY, config.inference.server_start_timeout_s))
            triton_url, mode = server.grpc_url, "local"
        cleanup.callback(ctx.term)  # runs last: after every socket is closed
        collector = Collector(ctx, config, output_dir)
        cleanup.callback(collector.close)

        def stop_all() -> None:
            stop.set()
            for p in reversed(procs):
                _stop_process(p)

        cleanup.callback(stop_all)
        builder = mp.Process(target=run_builder, name="builder", args=(config, collector.endpoint, ready, stop), daemon=True)
        builder.start()
        procs.append(builder)
        (_, endpoints), = _wait_ready(ready, procs, 1, START_TIMEOUT_S)
        n_workers = config.worker.resolved_count
        for i in range(n_workers):
            w = mp.Process(target=run_worker, name=f"worker-{i}", daemon=True,
                           args=(i, config, triton_url, endpoints["work"], collector.endpoint, ready, stop))
            w.start()
            procs.append(w)
        started = _wait_ready(ready, procs, n_workers, START_TIMEOUT_S)
        problems = [info.get("problem", "") for _, info in started]
        readout = mp.Process(target=run_readout, name="readout", daemon=True,
                             args=(config, endpoints["fragments"], collector.endpoint, n_events, duration_s, stop))
        readout.start()
        procs.append(readout)

        target = n_events
        drain_deadline = None
        try:
            while True:
                collector.poll(100)
                if progress:
                    progress({"decided": collector.ledger.decided, "target": target,
                              "l1_accepted": (collector.end or {}).get("l1_accepted"),
                              "triton": collector.inference_paths.get("triton", 0),
                              "fallback": collector.inference_paths.get("fallback", 0),
                              "debug": collector.ledger.outcomes.get("debug", 0)})
                if collector.end is not None:
                    total = collector.end["l1_accepted"]
                    if collector.ledger.decided >= total and collector.ledger.lost(total) == 0:
                        break
                    if drain_deadline is None:
                        drain_deadline = time.monotonic() + drain_timeout_s(config)
                    elif time.monotonic() > drain_deadline:
                        break
                elif readout.exitcode is not None and readout.exitcode != 0:
                    raise TriggerSimError(f"readout process failed with exit code {readout.exitcode}")
        except KeyboardInterrupt:
            stop.set()  # readout sends END with what it sent; drain briefly below
        stop.set()
        # Final messages: builder and worker statistics, events drained at stop.
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and (collector.builder_stats is None or len(collector.worker_stats) < n_workers or collector.end is None):
            collector.poll(100)
        collector.poll(200)
        stop_all()
        summary = summarise(collector, n_workers, triton_url, mode, time.monotonic() - wall_start,
                            str(output_dir) if output_dir is not None and collector.writers else None, problems)
    return summary
