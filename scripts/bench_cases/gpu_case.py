"""Case g (`bench.py --gpu`): the models served on the GPU against the same models on the CPU.

Two local servers on the same host: one loads each model's config.pbtxt (the numpy forward
on the CPU), the other configs/gpu.pbtxt (the torch forward on the GPU). The worker's own
client (`TritonBackend`, with shared memory for graph-sized requests as a worker uses it on
a local server) calls both in alternating blocks with the same requests:
- the edge classifier on simulated hit graphs at pile-up 20, 60 and 200;
- the jet tagger on 8 jets.
Per call: p50 and p99, the server's compute time per request (its statistics), and the
ratio of p50s CPU / GPU per pair of blocks (the speed-up of serving on the GPU). Before
timing, the two servers' answers are compared (numpy and torch agree to 1e-5).

On a host without a GPU, `--torch-on-cpu` puts the torch forward on the CPU on the "GPU"
side: the code path of a GPU instance, to check the script, not a GPU figure.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench_cases.common import CaseResult, fmt, log
from bench_cases.inference_case import Settings as InferenceSettings
from bench_cases.inference_case import alternate, cycling_calls, edge_graphs, model_stats, paired_metrics
from farm.triton_server import TritonServer
from trigger_sim.inference.triton_client import TritonBackend
from trigger_sim.models import jet_tagger
from trigger_sim.models.registry import EDGE_CLASSIFIER, JET_TAGGER, model_spec

PILEUPS = (20.0, 60.0, 200.0)
N_JETS = 8


@dataclass(frozen=True)
class Settings:
    repetitions: int  # pairs of blocks per request kind
    calls_per_block: int
    graphs_per_pileup: int = 3
    warm_up_calls: int = 10


@dataclass(frozen=True)
class GpuSide:
    """The server that stands for the GPU: its repository, configuration name, and label."""

    repository: Path
    model_config_name: str | None
    label: str


def _client(server: TritonServer, model: str) -> TritonBackend:
    spec = model_spec(model)
    prefix = f"tsim_bench_{uuid.uuid4().hex[:8]}_" if model == EDGE_CLASSIFIER else None
    return TritonBackend(server.grpc_url, model, spec.input_types, spec.output_name, shm_prefix=prefix,
                         output_bytes=spec.output_bytes)


def _compare(kind: str, requests: list, cpu: TritonBackend, gpu: TritonBackend, settings: Settings, res: CaseResult,
             model: str) -> None:
    """Alternating blocks of the same requests on both servers; metrics `<kind>_cpu_*`, `<kind>_gpu_*`."""
    for request in requests:
        a, b = cpu.infer(request, 60.0), gpu.infer(request, 60.0)
        # float32 sums over a node's edges in another order: 1e-5 apart at pile-up 200
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4, err_msg=f"{kind}: GPU and CPU answers differ")
    quick = InferenceSettings(settings.repetitions, settings.calls_per_block, settings.calls_per_block, 0.0,
                              warm_up_calls=settings.warm_up_calls)
    snapshots = {side: model_stats(backend.client, model) for side, backend in (("cpu", cpu), ("gpu", gpu))}
    before = {side: snapshot() for side, snapshot in snapshots.items()}
    cpu_blocks, gpu_blocks = alternate(cycling_calls(cpu, requests, 60.0), cycling_calls(gpu, requests, 60.0), quick,
                                       settings.calls_per_block)
    paired_metrics(res, (f"{kind}_cpu", cpu_blocks), (f"{kind}_gpu", gpu_blocks), f"{kind}_gpu_speedup_p50")
    for side, snapshot in snapshots.items():  # this comparison's calls only (warm-up included)
        count, ns = (a - b for a, b in zip(snapshot().get("compute_infer", (0, 0)), before[side].get("compute_infer", (0, 0))))
        res.diagnostics[f"{kind}_{side}_compute_infer_ms"] = ns / count / 1e6 if count else 0.0


def run(settings: Settings, gpu_side: GpuSide, cpu_repository) -> CaseResult:
    res = CaseResult("gpu_serving", f"g) The models served on the CPU vs {gpu_side.label}")
    with TritonServer(cpu_repository, start_timeout_s=180) as cpu_server, \
            TritonServer(gpu_side.repository, start_timeout_s=300, model_config_name=gpu_side.model_config_name) as gpu_server:
        rows = []
        for model in (EDGE_CLASSIFIER, JET_TAGGER):
            cpu, gpu = _client(cpu_server, model), _client(gpu_server, model)
            try:
                if model == EDGE_CLASSIFIER:
                    for pileup in PILEUPS:
                        kind = f"edge_pu{pileup:g}"
                        graphs = edge_graphs(settings.graphs_per_pileup, pileup)
                        log(f"  gpu: edge classifier, pile-up {pileup:g} ({len(graphs[0]['EDGE_INDEX']):,} edges) ...")
                        _compare(kind, graphs, cpu, gpu, settings, res, model)
                        edges = [len(g["EDGE_INDEX"]) for g in graphs]
                        rows.append((f"edge classifier, pile-up {pileup:g} ({min(edges):,}-{max(edges):,} edges)", kind))
                else:
                    log("  gpu: jet tagger ...")
                    jets = np.random.default_rng(7).normal(size=(N_JETS, jet_tagger.N_FEATURES)).astype(np.float32)
                    _compare("jets", [jets], cpu, gpu, settings, res, model)
                    rows.append((f"jet tagger, {N_JETS} jets", "jets"))
            finally:
                cpu.close()
                gpu.close()
    m, d = res.metrics, res.diagnostics
    res.tables.append((["request", "CPU p50 ms", "CPU p99 ms", f"{gpu_side.label} p50 ms", "p99 ms",
                        "speed-up, ratio of p50s CPU / GPU (per pair)", "server compute per request, CPU / GPU ms"], [
        [label, fmt(m[f"{k}_cpu_p50_ms"]), fmt(m[f"{k}_cpu_p99_ms"]), fmt(m[f"{k}_gpu_p50_ms"]), fmt(m[f"{k}_gpu_p99_ms"]),
         fmt(m[f"{k}_gpu_speedup_p50"]), f"{d[f'{k}_cpu_compute_infer_ms']:.2f} / {d[f'{k}_gpu_compute_infer_ms']:.2f}"]
        for label, k in rows]))
    res.notes.append(
        f"{settings.repetitions} pairs of blocks of {settings.calls_per_block} calls per request kind, after "
        f"{settings.warm_up_calls} warm-up calls; {settings.graphs_per_pileup} simulated events per pile-up. "
        "The worker's client with shared memory for the graphs (the server is local). Server compute: Triton's "
        "compute_infer per request, the Python backend's execute (forward pass and tensor handling).")
    return res
