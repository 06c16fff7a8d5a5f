"""Case f: a pool of two local servers, one SIGKILLed; and the worker's client path against
Triton's own C++ client.

1. Failover at the client, timed exactly: one worker's inference service over a pool of two
   servers (jet tagger, 8 jets) calls at `call_rate_hz`; server A's process is SIGKILLed
   mid-run and the farm's keeper restarts it on its ports. Measured: calls that fell back,
   the time from the kill to the first call answered after it (by B), the time the restart
   took until ready, and the time from the kill until A answered a call again (rejoined
   after a successful probe).
2. Failover in the farm: `fault_scenarios.local_server_killed`, two local servers serving
   both models, one SIGKILLed at 30 % of the events, at a rate one server carries: events
   lost, fallbacks and their reasons, calls per server, restarts.
3. Client overhead: the worker's path (InferenceService over the pool's backend over
   TritonBackend) against `perf_analyzer` (Triton's C++ load generator) on the same server,
   model and input (jet tagger, 8 × 9 features), concurrency 1, p50; and against a bare
   tritonclient.grpc loop, alternating blocks. perf_analyzer is found on PATH or at
   $PERF_ANALYZER (../shared/notes/triton.md says how to get it; it needs libcudart on
   LD_LIBRARY_PATH). Where it is absent the case says so and reports the bare Python client.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

from bench_cases.common import CaseResult, Target, fmt, log, percentile, stats
from bench_cases.inference_case import EVENT_BUDGET_NS, N_JETS, _time_calls
from farm.fault_scenarios import local_server_killed
from farm.server_keeper import ServerKeeper
from farm.triton_server import TritonServer
from trigger_sim import clock
from trigger_sim.config import MODEL_REPOSITORY, FarmConfig, with_overrides
from trigger_sim.inference.factory import build_inference, close_inference, prepare_inference
from trigger_sim.inference.service import TRITON
from trigger_sim.models import jet_tagger

TARGET_PERF_ANALYZER_RATIO = 1.15
PA_RESULT = re.compile(r"p50 latency:\s*(\d+)\s*usec")


@dataclass(frozen=True)
class Settings:
    kills: int  # client-level kill-and-restart rounds
    call_rate_hz: float
    farm_events: int
    farm_rate_hz: float
    overhead_repetitions: int
    calls_per_block: int
    perf_analyzer_window_ms: int = 3000


def tagger_repository(root: Path) -> Path:
    (root / "jet_tagger").symlink_to(MODEL_REPOSITORY / "jet_tagger", target_is_directory=True)
    return root


def start_two(repository: Path) -> list[TritonServer]:
    servers = [TritonServer(repository, start_timeout_s=120) for _ in range(2)]
    for s in servers:
        s.launch()
    for s in servers:
        s.wait_ready()
    return servers


def pool_service(urls: list[str]):
    config = with_overrides(FarmConfig(), inference={"servers": tuple(urls), "models": ("jet_tagger",),
                                                     "breaker_open_ms": 100.0, "shared_memory": "off"})
    services = build_inference(config, urls)
    problem = prepare_inference(services)
    if problem:
        close_inference(services)
        raise RuntimeError(problem)
    return services


# -- 1. failover at the client ------------------------------------------------------------------
def client_failover(settings: Settings, res: CaseResult, x: np.ndarray) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="tsim-bench-pool-") as tmp:
        a, b = start_two(tagger_repository(Path(tmp)))
        keeper = ServerKeeper([a, b], period_s=0.05)
        keeper.start()
        services = pool_service([a.grpc_url, b.grpc_url])
        service = services["jet_tagger"]
        pool = service.remote.pool
        period_s = 1.0 / settings.call_rate_hz
        try:
            for _ in range(settings.kills):
                for _ in range(int(settings.call_rate_hz)):  # a second of calls before the kill
                    service.infer(x, clock.now_ns() + EVENT_BUDGET_NS)
                    time.sleep(period_s)
                answered_a = _answered(pool, a.grpc_url)
                fallbacks = service.counters.fallback_calls
                restarts = keeper.restarts[a.grpc_url]
                a.proc.kill()
                killed = time.monotonic()
                first_answer_s = rejoin_s = None
                while time.monotonic() - killed < 60 and rejoin_s is None:
                    path = service.infer(x, clock.now_ns() + EVENT_BUDGET_NS).path
                    now = time.monotonic() - killed
                    if path == TRITON and first_answer_s is None:
                        first_answer_s = now
                    if _answered(pool, a.grpc_url) > answered_a:
                        rejoin_s = now
                    time.sleep(period_s)
                restart_s = keeper.restart_s[-1] if keeper.restarts[a.grpc_url] > restarts else float("nan")
                rows.append((first_answer_s, restart_s, rejoin_s, service.counters.fallback_calls - fallbacks))
        finally:
            keeper.stop()
            close_inference(services)
            a.stop()
            b.stop()
    first, restart, rejoin, fell_back = zip(*rows)
    res.metrics["failover_first_answer_ms"] = stats([1e3 * v for v in first if v is not None], "ms")
    res.metrics["failover_restart_s"] = stats(list(restart), "s")
    res.metrics["failover_rejoin_s"] = stats([v for v in rejoin if v is not None] or [float("nan")], "s")
    res.metrics["failover_client_fallbacks"] = stats(list(fell_back), "calls")
    res.targets.append(Target("client failover: calls that fell back after a server's SIGKILL (max over kills)",
                              max(fell_back), "<=", 0))


def _answered(pool, address: str) -> int:
    c = pool.counters()[address]
    return c["calls"] - c["failures"]


# -- 2. failover in the farm --------------------------------------------------------------------
def farm_failover(settings: Settings, res: CaseResult) -> None:
    result = local_server_killed(settings.farm_events, rate_hz=settings.farm_rate_hz)
    s = result.summary
    inf = s["inference"]
    res.diagnostics["farm"] = {"lost": s["events"]["lost"], "fallback_calls": inf["fallback_calls"],
                               "fallback_reasons": inf["fallback_reasons"], "servers": inf["servers"],
                               "killed": result.notes.get("killed"), "restart_s": result.notes.get("restart_s"),
                               "problems": s["problems"], "l1_accepted": s["events"]["l1_accepted"]}
    res.targets.append(Target("farm failover: events lost", s["events"]["lost"], "<=", 0))
    unexplained = sum(n for reason, n in inf["fallback_reasons"].items() if reason not in ("timeout", "no_time"))
    res.targets.append(Target("farm failover: fallbacks other than deadlines that could not be met", unexplained, "<=", 0))
    killed = inf["servers"].get(result.notes.get("killed", ""), {})
    res.targets.append(Target("farm failover: restarts of the killed server", killed.get("restarts", 0), ">=", 1))
    res.tables.append((["server (farm run)", "calls", "failures", "p50 ms", "p99 ms", "restarts"],
                       [[addr + (" (killed)" if addr == result.notes.get("killed") else ""), str(v["calls"]), str(v["failures"]),
                         f"{v['p50_ms']:.2f}", f"{v['p99_ms']:.2f}", str(v["restarts"])] for addr, v in inf["servers"].items()]))
    res.notes.append(f"farm run: {s['events']['l1_accepted']} events at {settings.farm_rate_hz:g} Hz, lost {s['events']['lost']}, "
                     f"fallbacks {inf['fallback_calls']} {dict(inf['fallback_reasons'])}, restart took "
                     + ", ".join(f"{v:.1f} s" for v in result.notes.get("restart_s", [])))


# -- 3. client overhead against perf_analyzer -----------------------------------------------------
def perf_analyzer_binary() -> str | None:
    return os.environ.get("PERF_ANALYZER") or shutil.which("perf_analyzer")


def perf_analyzer_p50_ms(binary: str, url: str, window_ms: int) -> float:
    cmd = [binary, "-m", jet_tagger.MODEL_NAME, "-i", "grpc", "-u", url, "-b", str(N_JETS),
           "--shape", f"{jet_tagger.INPUT_NAME}:{jet_tagger.N_FEATURES}", "--concurrency-range", "1",
           "--percentile", "50", "-p", str(window_ms)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    found = PA_RESULT.findall(done.stdout)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"perf_analyzer failed ({done.returncode}): {(done.stdout + done.stderr)[-400:]}")
    return int(found[-1]) / 1e3


def client_overhead(settings: Settings, res: CaseResult, x: np.ndarray) -> None:
    binary = perf_analyzer_binary()
    with tempfile.TemporaryDirectory(prefix="tsim-bench-pa-") as tmp, \
            TritonServer(tagger_repository(Path(tmp)), start_timeout_s=120) as server:
        services = pool_service([server.grpc_url])
        service = services["jet_tagger"]
        bare = grpcclient.InferenceServerClient(server.grpc_url)
        request = grpcclient.InferInput(jet_tagger.INPUT_NAME, list(x.shape), "FP32")
        request.set_data_from_numpy(x)
        outputs = [grpcclient.InferRequestedOutput(jet_tagger.OUTPUT_NAME)]
        worker, bare_blocks, pa = [], [], []
        try:
            def worker_call():
                return service.infer(x, clock.now_ns() + EVENT_BUDGET_NS)

            def bare_call():
                return bare.infer(jet_tagger.MODEL_NAME, [request], outputs=outputs)

            _time_calls(worker_call, 50)
            _time_calls(bare_call, 50)
            for _ in range(settings.overhead_repetitions):
                worker.append(percentile(_time_calls(worker_call, settings.calls_per_block), 50))
                bare_blocks.append(percentile(_time_calls(bare_call, settings.calls_per_block), 50))
                if binary:
                    pa.append(perf_analyzer_p50_ms(binary, server.grpc_url, settings.perf_analyzer_window_ms))
            if service.counters.fallback_calls:
                raise RuntimeError(f"the worker path fell back {service.counters.fallback_calls} times")
        finally:
            bare.close()
            close_inference(services)
    m = res.metrics
    m["worker_path_p50_ms"] = stats(worker, "ms")
    m["bare_python_p50_ms"] = stats(bare_blocks, "ms")
    m["worker_over_bare_python_p50"] = stats([w / b for w, b in zip(worker, bare_blocks)], "×")
    rows = [["worker path: InferenceService + pool + TritonBackend", fmt(m["worker_path_p50_ms"])],
            ["bare tritonclient.grpc loop (request built once)", fmt(m["bare_python_p50_ms"])],
            ["ratio worker / bare Python (per pair of blocks)", fmt(m["worker_over_bare_python_p50"])]]
    if pa:
        m["perf_analyzer_p50_ms"] = stats(pa, "ms")
        m["worker_over_perf_analyzer_p50"] = stats([w / p for w, p in zip(worker, pa)], "×")
        rows += [["perf_analyzer (C++), concurrency 1", fmt(m["perf_analyzer_p50_ms"])],
                 ["ratio worker / perf_analyzer (per round)", fmt(m["worker_over_perf_analyzer_p50"])]]
        res.targets.append(Target("worker client path / perf_analyzer (p50)", m["worker_over_perf_analyzer_p50"]["median"],
                                  "<=", TARGET_PERF_ANALYZER_RATIO))
    else:
        res.notes.append("perf_analyzer was not found (PATH or $PERF_ANALYZER): the worker path is compared with the "
                         "bare Python client only (../shared/notes/triton.md says how to get perf_analyzer)")
    res.tables.append(([f"jet tagger, {N_JETS} jets × {jet_tagger.N_FEATURES} features, concurrency 1", "p50 ms"], rows))


def run(settings: Settings) -> CaseResult:
    res = CaseResult("failover", "f) A pool of two local servers, one SIGKILLed; the client path against perf_analyzer")
    x = np.random.default_rng(5).normal(size=(N_JETS, jet_tagger.N_FEATURES)).astype(np.float32)
    log("  failover: at the client, one of two servers killed and restarted ...")
    client_failover(settings, res, x)
    m = res.metrics
    res.tables.append((["one worker's pool of two servers, server A SIGKILLed", "median [min–max]"], [
        ["time from the kill to the first call answered after it (ms)", fmt(m["failover_first_answer_ms"])],
        ["restart of A by the keeper, until ready (s)", fmt(m["failover_restart_s"])],
        ["time from the kill until A answered a call again (s)", fmt(m["failover_rejoin_s"])],
        ["calls that fell back", fmt(m["failover_client_fallbacks"])],
    ]))
    log("  failover: in the farm, two local servers, one killed ...")
    farm_failover(settings, res)
    log("  failover: client overhead against perf_analyzer ...")
    client_overhead(settings, res, x)
    return res
