"""Case c: the inference path against bare tritonclient calls, on a local tritonserver.

1. Client overhead: the worker's path (`InferenceService` over `TritonBackend`: deadline,
   circuit breaker, fallback logic, counters) against a bare `tritonclient.grpc` loop calling
   the same model (jet_tagger) with the same 8 jets x N_FEATURES (9) features, its request built once.
   Blocks of calls alternate between the two; p50 and p99 per call, ratio of p50s per pair
   of blocks.
2. Graph-sized requests (~1.8 MB: node features FP32 [n, 3] and edge pairs INT64 [m, 2], the
   size of a pile-up-60 hit graph) to `model_repository_bench/echo_graph`, which answers
   with five sums: tensors in the gRPC message against Triton system shared memory (regions
   registered once; each call writes its inputs into the region and reads its output from
   another). Alternating blocks; ratio of p50s per pair.
3. The worker's own edge-classifier client (`TritonBackend`) with and without shared memory,
   on the served GNN with real pile-up-60 graphs: what the farm gains per event.
4. Dynamic batching on vs off for the jet tagger: 8 client threads (each its own
   `TritonBackend`) for a fixed time, requests per second; the "off" model is a copy of
   jet_tagger without `dynamic_batching`, made in a temporary repository at run time.
   The server's statistics give the requests merged per model execution.
"""

from __future__ import annotations

import itertools
import re
import statistics
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.utils.shared_memory as shm

from bench_cases.common import REPO_ROOT, CaseResult, Target, fmt, log, percentile, stats
from farm.triton_server import TritonServer
from trigger_sim import clock
from trigger_sim.config import MODEL_REPOSITORY
from trigger_sim.inference.breaker import CircuitBreaker
from trigger_sim.inference.service import TRITON, InferenceService
from trigger_sim.inference.triton_client import TritonBackend
from trigger_sim.models import jet_tagger

BENCH_REPOSITORY = REPO_ROOT / "model_repository_bench"
GRAPH_MODEL = "echo_graph"
N_JETS = 8
TIMEOUT_S = 0.1  # the farm's default inference deadline
EVENT_BUDGET_NS = 400_000_000  # what is left of the event budget when the tagger runs (soft timeout 0.8 x 500 ms)
GRAPH_NODES, GRAPH_EDGES = 60_000, 66_000  # 720 kB + 1056 kB
N_THREADS = 8
TARGET_CLIENT_RATIO = 1.1
TARGET_SHM_SPEEDUP = 2.0


@dataclass(frozen=True)
class Settings:
    repetitions: int  # pairs of blocks (client overhead, graph) and of batching runs
    calls_per_block: int
    graph_calls_per_block: int
    batching_seconds: float
    warm_up_calls: int = 50
    edge_calls_per_block: int = 8  # the edge classifier on pile-up-60 graphs (~0.1 s a call on 2 cores)


def _time_calls(fn, n: int) -> list[float]:
    """Wall time of each of `n` calls, in ms."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def alternate(first, second, settings: Settings, calls: int, server_stats=None):
    """Warm both up, then `repetitions` pairs of blocks of `calls` calls, alternating.

    Returns the per-call times (ms) of each side's blocks; with `server_stats` (a function
    returning the model's cumulative statistics), also each side's server-side time per
    request by stage (ms), from the statistics' change over that side's blocks.
    """
    _time_calls(first, settings.warm_up_calls)
    _time_calls(second, settings.warm_up_calls)
    blocks: tuple[list, list] = ([], [])
    server: tuple[dict, dict] = ({}, {})
    for _ in range(settings.repetitions):
        for side, fn in enumerate((first, second)):
            before = server_stats() if server_stats else None
            blocks[side].append(_time_calls(fn, calls))
            if server_stats:
                after = server_stats()
                for stage, (count, ns) in after.items():
                    c, t = server[side].get(stage, (0, 0))
                    server[side][stage] = (c + count - before[stage][0], t + ns - before[stage][1])
    per_request = tuple({stage: ns / count / 1e6 for stage, (count, ns) in side.items() if count} for side in server)
    return (*blocks, *per_request) if server_stats else blocks


def cycling_calls(backend: TritonBackend, requests: list, timeout_s: float = 30.0):
    """A function calling `backend` with the next of `requests` each time, round robin."""
    turn = itertools.count()

    def fn() -> np.ndarray:
        return backend.infer(requests[next(turn) % len(requests)], timeout_s=timeout_s)
    return fn


def model_stats(client: grpcclient.InferenceServerClient, model: str):
    """A function returning the model's cumulative (count, ns) per stage of Triton's statistics."""
    def snapshot() -> dict[str, tuple[int, int]]:
        st = client.get_inference_statistics(model, as_json=True)["model_stats"][0]["inference_stats"]
        return {stage: (int(v.get("count", 0)), int(v.get("ns", 0))) for stage, v in st.items()}
    return snapshot


def latency_metrics(res: CaseResult, prefix: str, blocks: list[list[float]]) -> None:
    res.metrics[f"{prefix}_p50_ms"] = stats([percentile(b, 50) for b in blocks], "ms")
    res.metrics[f"{prefix}_p99_ms"] = stats([percentile(b, 99) for b in blocks], "ms")


def paired_metrics(res: CaseResult, a: tuple[str, list[list[float]]], b: tuple[str, list[list[float]]], ratio: str) -> None:
    """p50 and p99 of both sides' blocks, and the ratio of p50s a / b taken per pair of blocks."""
    latency_metrics(res, *a)
    latency_metrics(res, *b)
    res.metrics[ratio] = stats([percentile(x, 50) / percentile(y, 50) for x, y in zip(a[1], b[1])], "×")


# -- 1. client path vs bare client ------------------------------------------------------------
def client_overhead(server: TritonServer, settings: Settings, res: CaseResult) -> None:
    x = np.random.default_rng(5).normal(size=(N_JETS, jet_tagger.N_FEATURES)).astype(np.float32)
    backend = TritonBackend(server.grpc_url, jet_tagger.MODEL_NAME, jet_tagger.INPUT_NAME, jet_tagger.OUTPUT_NAME)
    service = InferenceService(backend, jet_tagger.LocalJetTagger(), CircuitBreaker(3, 10**9), timeout_s=TIMEOUT_S)
    bare = grpcclient.InferenceServerClient(server.grpc_url)
    request = grpcclient.InferInput(jet_tagger.INPUT_NAME, list(x.shape), "FP32")
    request.set_data_from_numpy(x)
    outputs = [grpcclient.InferRequestedOutput(jet_tagger.OUTPUT_NAME)]
    try:
        def bare_call() -> np.ndarray:
            return bare.infer(jet_tagger.MODEL_NAME, [request], outputs=outputs).as_numpy(jet_tagger.OUTPUT_NAME)

        def service_call() -> np.ndarray:
            return service.infer(x, clock.now_ns() + EVENT_BUDGET_NS).scores

        if service.infer(x, clock.now_ns() + EVENT_BUDGET_NS).path != TRITON or \
                bare_call().tobytes() != service_call().tobytes():
            raise RuntimeError("the service and the bare client disagree (or the service fell back)")
        service_blocks, bare_blocks = alternate(service_call, bare_call, settings, settings.calls_per_block)
    finally:
        bare.close()
        backend.close()
    paired_metrics(res, ("service", service_blocks), ("bare_client", bare_blocks), "service_over_bare_p50")
    c = service.counters
    res.diagnostics["service_counters"] = {"triton_calls": c.triton_calls, "fallback_calls": c.fallback_calls,
                                           "fallback_reasons": dict(c.fallback_reasons)}
    res.diagnostics["service_cost_us"] = service_cost_us(x)
    res.targets.append(Target("worker client path / bare client (p50)", res.metrics["service_over_bare_p50"]["median"],
                              "<=", TARGET_CLIENT_RATIO))


def service_cost_us(x: np.ndarray, n: int = 2000) -> dict[str, float]:
    """What the service adds per call, timed without a server: the InferenceService logic
    around a backend that answers at once, and building the gRPC request (InferInput +
    set_data_from_numpy), which the bare loop does once."""
    class Instant:  # one score per item, the answer's own shape: the path of a call that succeeds
        def infer(self, inputs, timeout_s):
            return np.zeros((len(inputs), 1), np.float32)

    service = InferenceService(Instant(), Instant(), CircuitBreaker(3, 10**9), timeout_s=TIMEOUT_S)

    def build_request():
        request = grpcclient.InferInput(jet_tagger.INPUT_NAME, list(x.shape), "FP32")
        request.set_data_from_numpy(np.ascontiguousarray(x, np.float32))

    first = service.infer(x, clock.now_ns() + EVENT_BUDGET_NS)
    if first.path != TRITON:  # a failed call costs more (a fallback): the figure would not be the service's
        raise RuntimeError(f"the instant backend's call took the {first.path} path ({first.reason}), not {TRITON}")
    out = {}
    for name, fn in (("service_logic", lambda: service.infer(x, clock.now_ns() + EVENT_BUDGET_NS)),
                     ("build_request", build_request)):
        fn()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out[name] = 1e6 * (time.perf_counter() - t0) / n
    return out


# -- 2. graph-sized request: gRPC vs system shared memory -------------------------------------
def graph_transfer(server: TritonServer, settings: Settings, res: CaseResult) -> None:
    rng = np.random.default_rng(9)
    nodes = rng.normal(size=(GRAPH_NODES, 3)).astype(np.float32)
    edges = rng.integers(0, GRAPH_NODES, size=(GRAPH_EDGES, 2)).astype(np.int64)
    expected = np.array([len(nodes), len(edges), nodes.sum(dtype=np.float64), edges.sum(dtype=np.int64)], np.float64)
    n_bytes = nodes.nbytes + edges.nbytes
    out_bytes = 4 * 8
    client = grpcclient.InferenceServerClient(server.grpc_url)
    tag = uuid.uuid4().hex[:12]
    in_name, out_name = f"bench_in_{tag}", f"bench_out_{tag}"
    handles: list[Any] = []
    registered: list[str] = []
    try:
        in_handle = shm.create_shared_memory_region(in_name, f"/{in_name}", n_bytes)
        handles.append(in_handle)
        out_handle = shm.create_shared_memory_region(out_name, f"/{out_name}", out_bytes)
        handles.append(out_handle)
        for name, size in ((in_name, n_bytes), (out_name, out_bytes)):
            client.register_system_shared_memory(name, f"/{name}", size)
            registered.append(name)

        def grpc_call() -> np.ndarray:
            a = grpcclient.InferInput("NODES", list(nodes.shape), "FP32")
            a.set_data_from_numpy(nodes)
            b = grpcclient.InferInput("EDGES", list(edges.shape), "INT64")
            b.set_data_from_numpy(edges)
            result = client.infer(GRAPH_MODEL, [a, b], outputs=[grpcclient.InferRequestedOutput("SUMS")])
            return result.as_numpy("SUMS")

        def shm_call() -> np.ndarray:
            shm.set_shared_memory_region(in_handle, [nodes, edges])
            a = grpcclient.InferInput("NODES", list(nodes.shape), "FP32")
            a.set_shared_memory(in_name, nodes.nbytes, 0)
            b = grpcclient.InferInput("EDGES", list(edges.shape), "INT64")
            b.set_shared_memory(in_name, edges.nbytes, nodes.nbytes)
            out = grpcclient.InferRequestedOutput("SUMS")
            out.set_shared_memory(out_name, out_bytes)
            client.infer(GRAPH_MODEL, [a, b], outputs=[out])
            return shm.get_contents_as_numpy(out_handle, np.float64, [4]).copy()

        for fn in (grpc_call, shm_call):
            if not np.allclose(fn(), expected, rtol=1e-6):
                raise RuntimeError(f"{GRAPH_MODEL}: wrong sums from {fn.__name__}")
        grpc_blocks, shm_blocks, grpc_server, shm_server = alternate(
            grpc_call, shm_call, settings, settings.graph_calls_per_block, model_stats(client, GRAPH_MODEL))
        # what a call costs with (almost) nothing to move: the floor of both paths
        small_nodes, small_edges = nodes[:1], edges[:1]

        def tiny_call() -> None:
            a = grpcclient.InferInput("NODES", [1, 3], "FP32")
            a.set_data_from_numpy(small_nodes)
            b = grpcclient.InferInput("EDGES", [1, 2], "INT64")
            b.set_data_from_numpy(small_edges)
            client.infer(GRAPH_MODEL, [a, b], outputs=[grpcclient.InferRequestedOutput("SUMS")])

        _time_calls(tiny_call, settings.warm_up_calls)
        snapshot = model_stats(client, GRAPH_MODEL)
        before = snapshot()
        tiny = _time_calls(tiny_call, settings.graph_calls_per_block)
        after = snapshot()
        tiny_server = {stage: (after[stage][1] - before[stage][1]) / (after[stage][0] - before[stage][0]) / 1e6
                       for stage in after if after[stage][0] > before[stage][0]}
        copy_ms = _time_calls(lambda: shm.set_shared_memory_region(in_handle, [nodes, edges]), settings.graph_calls_per_block)
    finally:
        for name in registered:
            try:
                client.unregister_system_shared_memory(name)
            except Exception as err:  # keep cleaning up
                log(f"  could not unregister {name}: {err}")
        for handle in handles:
            shm.destroy_shared_memory_region(handle)
        client.close()
    paired_metrics(res, ("graph_grpc", grpc_blocks), ("graph_shm", shm_blocks), "graph_shm_speedup_p50")
    res.metrics["graph_tiny_request_p50_ms"] = stats([percentile(tiny, 50)], "ms")
    res.metrics["graph_shm_write_p50_ms"] = stats([percentile(copy_ms, 50)], "ms")
    res.diagnostics["graph_request_bytes"] = n_bytes
    res.diagnostics["graph_server_ms_per_request"] = {"grpc": grpc_server, "shm": shm_server, "tiny": tiny_server}
    res.diagnostics["graph_client_mean_ms"] = {"grpc": statistics.fmean(x for b in grpc_blocks for x in b),
                                               "shm": statistics.fmean(x for b in shm_blocks for x in b),
                                               "tiny": statistics.fmean(tiny)}
    res.targets.append(Target("graph-sized request: shared memory speed-up over gRPC (p50)",
                              res.metrics["graph_shm_speedup_p50"]["median"], ">=", TARGET_SHM_SPEEDUP))


GRAPH_STAGES = ("queue", "compute_input", "compute_infer", "compute_output")


def graph_stage_table(diag: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Mean time per request (ms): at the client, inside the server by stage, and outside the server."""
    server, client = diag["graph_server_ms_per_request"], diag["graph_client_mean_ms"]
    rows = []
    for side, label in (("grpc", "gRPC tensors"), ("shm", "shared memory"), ("tiny", "1-node graph (gRPC)")):
        inside = server[side].get("success", 0.0)
        rows.append([label, f"{client[side]:.2f}", *(f"{server[side].get(st, 0.0):.2f}" for st in GRAPH_STAGES),
                     f"{client[side] - inside:.2f}"])
    return (["mean per request (ms)", "client", "server queue", "compute_input", "compute_infer (Python backend)",
             "compute_output", "outside the server (client + transport)"], rows)


def graph_limits(diag: dict[str, Any], m: dict[str, dict[str, Any]]) -> str:
    server, client = diag["graph_server_ms_per_request"], diag["graph_client_mean_ms"]
    outside = {k: client[k] - server[k].get("success", 0.0) for k in client}
    infer = {k: server[k].get("compute_infer", 0.0) for k in server}
    return (
        f"graph transfer: shared memory does remove what happens outside the server (client serialisation, gRPC "
        f"transport, server parsing: {outside['grpc']:.2f} ms per request with gRPC tensors, {outside['shm']:.2f} ms "
        f"with shared memory), but the server's own time per request stays: the Python backend's compute_infer is "
        f"{infer['grpc']:.2f} ms (gRPC) and {infer['shm']:.2f} ms (shared memory) for a "
        f"{diag['graph_request_bytes'] / 1e6:.1f} MB request against {infer['tiny']:.2f} ms for a 1-node graph. "
        f"That is the Python backend handing the inputs to its stub process (it copies every input tensor into its "
        f"own shared-memory pool, whatever the request's transport) and the stub running the model; on 2 cores the "
        f"copies also compete with the client. Writing the client's region costs "
        f"{m['graph_shm_write_p50_ms']['median']:.2f} ms; a 1-node graph costs {client['tiny']:.2f} ms end to end, "
        f"the floor of any call.")


# -- 3. the worker's edge classifier on real graphs: gRPC vs shared memory ---------------------
EDGE_PILEUP = 60.0
EDGE_EVENTS = 4


def edge_graphs(n: int = EDGE_EVENTS, pileup: float = EDGE_PILEUP) -> list[dict[str, np.ndarray]]:
    """The edge classifier's requests for `n` simulated events: what a worker sends."""
    from trigger_sim.config import FarmConfig, with_overrides
    from trigger_sim.models import edge_classifier
    from trigger_sim.simulation import simulate

    cfg = with_overrides(FarmConfig(), run={"seed": 6060}, physics={"pileup_mean": pileup})
    return [edge_classifier.request_for_hits(simulate(cfg, l1_id).hits, cfg) for l1_id in range(n)]


def edge_classifier_transport(server: TritonServer, settings: Settings, res: CaseResult, exact: bool = True) -> None:
    """The worker's own client (`TritonBackend`, as the factory builds it) with and without
    shared memory, calling the served edge classifier with the same pile-up-60 graphs; both
    answers must be the same bit for bit (`exact`) or to 1e-4 (a GPU server)."""
    from trigger_sim.models.registry import EDGE_CLASSIFIER, model_spec

    spec = model_spec(EDGE_CLASSIFIER)
    graphs = edge_graphs()
    plain = TritonBackend(server.grpc_url, EDGE_CLASSIFIER, spec.input_types, spec.output_name)
    shared = TritonBackend(server.grpc_url, EDGE_CLASSIFIER, spec.input_types, spec.output_name,
                           shm_prefix=f"tsim_bench_{uuid.uuid4().hex[:8]}_", output_bytes=spec.output_bytes)
    try:
        for inputs in graphs:
            a, b = plain.infer(inputs, 30.0), shared.infer(inputs, 30.0)
            # bit for bit on the CPU; on a GPU, index_add sums a node's messages in no fixed order
            if (a.tobytes() != b.tobytes()) if exact else not np.allclose(a, b, rtol=1e-4, atol=1e-4):
                raise RuntimeError("edge classifier: shared memory and gRPC answers differ")
        quick = Settings(settings.repetitions, settings.calls_per_block, settings.edge_calls_per_block,
                         settings.batching_seconds, warm_up_calls=len(graphs))
        grpc_blocks, shm_blocks, grpc_server, shm_server = alternate(
            cycling_calls(plain, graphs), cycling_calls(shared, graphs), quick, settings.edge_calls_per_block, model_stats(plain.client, EDGE_CLASSIFIER))
    finally:
        plain.close()
        shared.close()
    paired_metrics(res, ("edge_grpc", grpc_blocks), ("edge_shm", shm_blocks), "edge_shm_speedup_p50")
    res.diagnostics["edge_request_bytes"] = [int(sum(a.nbytes for a in g.values())) for g in graphs]
    res.diagnostics["edge_edges"] = [int(len(g["EDGE_INDEX"])) for g in graphs]
    res.diagnostics["edge_outside_server_ms"] = {
        side: statistics.fmean(x for b in blocks for x in b) - server.get("success", 0.0)
        for side, blocks, server in (("grpc", grpc_blocks, grpc_server), ("shm", shm_blocks, shm_server))}
    res.diagnostics["edge_compute_infer_ms"] = {"grpc": grpc_server.get("compute_infer", 0.0),
                                                "shm": shm_server.get("compute_infer", 0.0)}


def edge_note(diag: dict[str, Any], m: dict[str, dict[str, Any]]) -> str:
    """What shared memory changes for the worker's GNN call, in the measured figures."""
    outside = diag["edge_outside_server_ms"]
    return (f"The worker's edge classifier: shared memory takes the time spent outside the server (client "
            f"serialisation, transport, server parsing) from {outside['grpc']:.1f} to {outside['shm']:.1f} ms per "
            f"call, but the call is the model's compute (p50 {m['edge_shm_p50_ms']['median']:.0f} ms), so its p50 "
            f"changes by a factor {m['edge_shm_speedup_p50']['median']:.2f}: the {outside['grpc'] - outside['shm']:.1f} "
            f"ms saved are {(outside['grpc'] - outside['shm']) / m['edge_shm_p50_ms']['median']:.0%} of it on this CPU "
            f"server. With a GPU server, where the forward pass is short, the transport would be most of the call.")


# -- 4. dynamic batching on vs off ------------------------------------------------------------
def no_batching_repository(tmp: Path, source: Path = MODEL_REPOSITORY) -> str:
    """A repository with a copy of `source`'s jet_tagger (each of its configurations) without
    dynamic batching; returns its model name."""
    name = f"{jet_tagger.MODEL_NAME}_no_batching"
    target = tmp / name
    shutil.copytree(source / jet_tagger.MODEL_NAME, target, ignore=shutil.ignore_patterns("__pycache__"))
    for path in [target / "config.pbtxt", *(target / "configs").glob("*.pbtxt")]:
        config = re.sub(r"dynamic_batching\s*\{[^}]*\}", "", path.read_text())
        config = re.sub(r'name:\s*"[^"]*"', f'name: "{name}"', config, count=1)
        path.write_text(config)
    return name


def saturate(url: str, model: str, seconds: float) -> tuple[float, dict[str, float]]:
    """Requests/s from N_THREADS threads calling `model` for `seconds`; and the server's batching."""
    x = np.random.default_rng(3).normal(size=(N_JETS, jet_tagger.N_FEATURES)).astype(np.float32)
    backends = [TritonBackend(url, model, jet_tagger.INPUT_NAME, jet_tagger.OUTPUT_NAME) for _ in range(N_THREADS)]
    counts = [0] * N_THREADS
    errors: list[BaseException] = []
    go = threading.Barrier(N_THREADS + 1)
    stop_at = [0.0]

    def loop(i: int) -> None:
        go.wait()
        try:
            while time.perf_counter() < stop_at[0]:
                backends[i].infer(x, timeout_s=10.0)
                counts[i] += 1
        except BaseException as err:  # reported below
            errors.append(err)

    before = _server_counts(backends[0], model)
    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(N_THREADS)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    go.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    after = _server_counts(backends[0], model)
    for b in backends:
        b.close()
    if errors:
        raise RuntimeError(f"{model}: {errors[0]}")
    requests = after["requests"] - before["requests"]
    executions = after["executions"] - before["executions"]
    return sum(counts) / elapsed, {"requests_per_execution": requests / executions if executions else 0.0}


def _server_counts(backend: TritonBackend, model: str) -> dict[str, int]:
    st = backend.client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return {"requests": int(st["inference_stats"]["success"].get("count", 0)),
            "executions": int(st.get("execution_count", 0))}


def batching(url_on: str, url_off: str, model_off: str, settings: Settings, res: CaseResult) -> None:
    saturate(url_on, jet_tagger.MODEL_NAME, min(1.0, settings.batching_seconds))  # warm-up
    saturate(url_off, model_off, min(1.0, settings.batching_seconds))
    on, off, merged_on, merged_off = [], [], [], []
    for _ in range(settings.repetitions):
        rate, info = saturate(url_on, jet_tagger.MODEL_NAME, settings.batching_seconds)
        on.append(rate)
        merged_on.append(info["requests_per_execution"])
        rate, info = saturate(url_off, model_off, settings.batching_seconds)
        off.append(rate)
        merged_off.append(info["requests_per_execution"])
    res.metrics["batching_on_requests_per_s"] = stats(on, "requests/s")
    res.metrics["batching_off_requests_per_s"] = stats(off, "requests/s")
    res.metrics["batching_on_over_off"] = stats([a / b for a, b in zip(on, off)], "×")
    res.metrics["batching_on_requests_per_execution"] = stats(merged_on, "requests")
    res.metrics["batching_off_requests_per_execution"] = stats(merged_off, "requests")


# -- the case ---------------------------------------------------------------------------------
def run(settings: Settings, repository: Path = MODEL_REPOSITORY, model_config_name: str | None = None) -> CaseResult:
    """The case against a server of `repository` with `model_config_name` (None: config.pbtxt)."""
    res = CaseResult("inference", "c) Inference path vs bare tritonclient (local tritonserver, gRPC)")
    with tempfile.TemporaryDirectory(prefix="tsim-bench-repo-") as tmp:
        model_off = no_batching_repository(Path(tmp), Path(repository))
        with TritonServer(repository, start_timeout_s=300, model_config_name=model_config_name) as main, \
                TritonServer(BENCH_REPOSITORY, start_timeout_s=120) as bench, \
                TritonServer(tmp, start_timeout_s=300, model_config_name=model_config_name) as off:
            log("  inference: client path vs bare client ...")
            client_overhead(main, settings, res)
            log("  inference: graph-sized request, gRPC vs shared memory ...")
            graph_transfer(bench, settings, res)
            log("  inference: the worker's edge classifier on pile-up-60 graphs, gRPC vs shared memory ...")
            edge_classifier_transport(main, settings, res, exact=model_config_name is None)
            log("  inference: dynamic batching on vs off, 8 client threads ...")
            batching(main.grpc_url, off.grpc_url, model_off, settings, res)
    m = res.metrics
    cost = res.diagnostics["service_cost_us"]
    res.tables.append(([f"jet tagger, {N_JETS} jets × {jet_tagger.N_FEATURES} features, one client", "p50 ms", "p99 ms"], [
        ["bare tritonclient.grpc loop (request built once)", fmt(m["bare_client_p50_ms"]), fmt(m["bare_client_p99_ms"])],
        ["worker path: InferenceService + TritonBackend", fmt(m["service_p50_ms"]), fmt(m["service_p99_ms"])],
        ["ratio of p50s, worker / bare (per pair of blocks)", fmt(m["service_over_bare_p50"]), ""],
    ]))
    res.tables.append(([f"echo_graph, {res.diagnostics['graph_request_bytes'] / 1e6:.2f} MB request, 32-byte answer",
                        "p50 ms", "p99 ms"], [
        ["tensors in the gRPC message", fmt(m["graph_grpc_p50_ms"]), fmt(m["graph_grpc_p99_ms"])],
        ["system shared memory (inputs and output)", fmt(m["graph_shm_p50_ms"]), fmt(m["graph_shm_p99_ms"])],
        ["speed-up of shared memory, ratio of p50s (per pair)", fmt(m["graph_shm_speedup_p50"]), ""],
        ["  floor: the same call with a 1-node graph (gRPC)", fmt(m["graph_tiny_request_p50_ms"]), ""],
        ["  of the shared-memory call: writing the inputs into the region", fmt(m["graph_shm_write_p50_ms"]), ""],
    ]))
    res.tables.append(graph_stage_table(res.diagnostics))
    d = res.diagnostics
    res.tables.append(([f"the worker's edge classifier client, {EDGE_EVENTS} pile-up-{EDGE_PILEUP:g} graphs "
                        f"({min(d['edge_edges']):,}-{max(d['edge_edges']):,} edges, "
                        f"{min(d['edge_request_bytes']) / 1e6:.1f}-{max(d['edge_request_bytes']) / 1e6:.1f} MB)",
                        "p50 ms", "p99 ms", "outside the server, mean ms"], [
        ["tensors in the gRPC message", fmt(m["edge_grpc_p50_ms"]), fmt(m["edge_grpc_p99_ms"]),
         f"{d['edge_outside_server_ms']['grpc']:.2f}"],
        ["system shared memory (the worker's default on a local server)", fmt(m["edge_shm_p50_ms"]),
         fmt(m["edge_shm_p99_ms"]), f"{d['edge_outside_server_ms']['shm']:.2f}"],
        ["speed-up of shared memory, ratio of p50s (per pair)", fmt(m["edge_shm_speedup_p50"]), "", ""],
    ]))
    res.tables.append(([f"jet tagger, {N_THREADS} client threads", "requests/s", "requests per model execution"], [
        ["dynamic batching on (max_queue_delay 200 µs)", fmt(m["batching_on_requests_per_s"]),
         fmt(m["batching_on_requests_per_execution"])],
        ["dynamic batching off", fmt(m["batching_off_requests_per_s"]), fmt(m["batching_off_requests_per_execution"])],
        ["ratio on / off (per pair)", fmt(m["batching_on_over_off"]), ""],
    ]))
    for target in res.targets:
        if target.met:
            continue
        if target.name.startswith("worker client path"):
            added_ms = (cost["service_logic"] + cost["build_request"]) / 1e3
            res.limits.append(
                f"client path: the worker path adds {added_ms * 1e3:.1f} µs per call when timed alone "
                f"({added_ms / m['bare_client_p50_ms']['median']:.1%} of the bare p50); the rest of the gap is the "
                f"spread between blocks (ratio min–max {fmt(m['service_over_bare_p50'])}) on shared cores.")
        else:
            res.limits.append(graph_limits(res.diagnostics, m))
    res.notes.append(edge_note(res.diagnostics, m))
    res.notes.append(
        f"{settings.repetitions} pairs of blocks of {settings.calls_per_block} calls (jet tagger) and "
        f"{settings.graph_calls_per_block} calls (graph), after {settings.warm_up_calls} warm-up calls each; "
        f"batching runs of {settings.batching_seconds:g} s. Client, server and its Python-backend stub share the "
        f"2 cores. What the worker path adds per call, timed alone: the service logic (deadline, breaker, counters) "
        f"{cost['service_logic']:.1f} µs, building the gRPC request (the bare loop builds it once) "
        f"{cost['build_request']:.1f} µs. Fallbacks during the run: {res.diagnostics['service_counters']['fallback_calls']}.")
    return res
