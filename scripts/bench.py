"""Benchmark suite: each part of the farm against the baseline it should come close to.

    .venv/bin/python scripts/bench.py                  # full suite (about 10 minutes on 2 cores)
    .venv/bin/python scripts/bench.py --quick          # smoke version, under 2 minutes
    .venv/bin/python scripts/bench.py --only builder --only inference --out-dir /tmp/b
    .venv/bin/python scripts/bench.py --gpu            # on a GPU host: BENCHMARKS-gpu.md (needs the gpu extra)

Cases (one module each in scripts/bench_cases/):
  builder    a) event builder vs a bare ZeroMQ PUSH/PULL pipe moving the same frames
  kernels    b) numba feature kernels vs their numpy references, pile-up 0/60/200
  inference  c) worker inference path vs bare tritonclient; gRPC vs shared memory for a
                graph-sized request; dynamic batching on vs off
  farm       d) highest sustainable Level-1 rate vs the ideal rate, with simulated and with
                replayed events (and e) builder memory)
  failover   f) a pool of two local servers, one SIGKILLed (at the client and in the farm); the
                worker's client path vs perf_analyzer (Triton's C++ client)
  overlap    h) one worker with 1, 2, 4, 8 event slots against a server that answers after a
                fixed time: events per second vs min(slots / (server + client time), 1 / CPU)
  assignment i) the central assignment service's CPU per event with 1, 2 and 4 nodes
  --gpu: g) the models served on the CPU vs on the GPU, side by side; c) against the server
  on the GPU; d) and e) twice, the models on the CPU then on the GPU. Writes
  BENCHMARKS-gpu.md and benchmarks-gpu.json. `--gpu --torch-on-cpu` runs the same on a host
  without a GPU, the torch forward on the CPU standing for the GPU (a check of the script).

Every case runs several times after a warm-up; figures are medians with min and max, ratios
are measured side by side in one run. Writes BENCHMARKS.md and benchmarks.json to
--out-dir (default: the repository root). The exit code is 0 when every case ran, whether or
not its targets were met (the report says which were).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import signal
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_cases, bench_kernels

from bench_cases import assignment_case, builder_case, failover_case, farm_case, gpu_case, inference_case, kernels_case, overlap_case, report  # noqa: E402
from bench_cases.common import REPO_ROOT, CaseResult, LoadMeter, log, machine  # noqa: E402
from farm.server_device import GPU_CONFIG_NAME, GPU_START_TIMEOUT_S, probe_gpus, torch_on_cpu_repository  # noqa: E402
from farm.triton_server import TritonServer  # noqa: E402
from trigger_sim.config import MODEL_REPOSITORY, FarmConfig, load_config, with_overrides  # noqa: E402
from trigger_sim.sustained import CRITERIA  # noqa: E402

CASES = ("builder", "kernels", "inference", "farm", "failover", "overlap", "assignment")
GPU_CASES = ("gpu_serving", "inference", "farm")

FULL = {
    "builder": builder_case.Settings(n_events=2000, repetitions=9, rounds=3),
    "kernels": kernels_case.Settings(repetitions=5),
    "inference": inference_case.Settings(repetitions=10, calls_per_block=200, graph_calls_per_block=40,
                                         batching_seconds=3.0),
    "farm": farm_case.Settings(run_seconds=6.0, low_rate_hz=10.0, low_rate_runs=2, max_probes=5, repeats=3,
                               overload_runs=2, warm_up_seconds=2.0, replay_events=400),
    "gpu_serving": gpu_case.Settings(repetitions=10, calls_per_block=20),
    "failover": failover_case.Settings(kills=3, call_rate_hz=200.0, farm_events=1500, farm_rate_hz=40.0,
                                       overhead_repetitions=5, calls_per_block=400),
    "overlap": overlap_case.Settings(repetitions=3, events=300),
    "assignment": assignment_case.Settings(events=200_000, repetitions=5),
}
QUICK = {
    "builder": builder_case.Settings(n_events=150, repetitions=2),
    "kernels": kernels_case.Settings(repetitions=1, pile_ups=(0, 60)),  # pile-up 200 is the slowest, and judges no target
    "inference": inference_case.Settings(repetitions=2, calls_per_block=50, graph_calls_per_block=10,
                                         batching_seconds=0.5, warm_up_calls=10, edge_calls_per_block=2),
    # a probe of 240 events (p99 from >= 200, windows of 60) instead of 1,300: the smoke checks the search runs
    "farm": farm_case.Settings(run_seconds=2.0, low_rate_hz=10.0, low_rate_runs=1, max_probes=1, repeats=1,
                               overload_runs=1, replay_events=100,
                               criteria=dataclasses.replace(CRITERIA, min_events=200, min_window_events=60)),
    "gpu_serving": gpu_case.Settings(repetitions=2, calls_per_block=3, graphs_per_pileup=1, warm_up_calls=2),
    "failover": failover_case.Settings(kills=1, call_rate_hz=200.0, farm_events=240, farm_rate_hz=40.0,
                                       overhead_repetitions=2, calls_per_block=200, perf_analyzer_window_ms=1500),
    "overlap": overlap_case.Settings(repetitions=1, events=60, warm_up=False),
    "assignment": assignment_case.Settings(events=20_000, repetitions=1),
}


def run_case(name: str, config: FarmConfig, settings: dict) -> list[CaseResult]:
    if name == "builder":
        return [builder_case.run(config, settings["builder"])]
    if name == "kernels":
        return [kernels_case.run(settings["kernels"])]
    if name == "inference":
        return [inference_case.run(settings["inference"])]
    if name == "failover":
        return [failover_case.run(settings["failover"])]
    if name == "farm":  # the models on the CPU, whatever the host has: the GPU suite compares
        return list(farm_case.run(with_overrides(config, inference={"device": "cpu"}), settings["farm"]))
    if name == "overlap":
        return [overlap_case.run(config, settings["overlap"])]
    if name == "assignment":
        return [assignment_case.run(settings["assignment"])]
    raise ValueError(name)


def relabel(result: CaseResult, label: str, name_suffix: str) -> CaseResult:
    """A case's result relabelled as measured with the models on `label`."""
    targets = [dataclasses.replace(t, name=f"{t.name} (models on {label})") for t in result.targets]
    return dataclasses.replace(result, name=f"{result.name}{name_suffix}", title=f"{result.title}: models on {label}",
                               targets=targets)


def run_gpu_case(name: str, config: FarmConfig, settings: dict, side: gpu_case.GpuSide) -> list[CaseResult]:
    """A case of the GPU suite; `side` is the server standing for the GPU."""
    if name == "gpu_serving":
        return [gpu_case.run(settings["gpu_serving"], side, MODEL_REPOSITORY)]
    if name == "inference":
        return [relabel(inference_case.run(settings["inference"], side.repository, side.model_config_name), side.label,
                        "_gpu")]
    if name == "farm":
        on_cpu = list(farm_case.run(with_overrides(config, inference={"device": "cpu"}), settings["farm"]))
        log(f"farm, models on {side.label} ...")

        def server() -> TritonServer:
            return TritonServer(side.repository, GPU_START_TIMEOUT_S, model_config_name=side.model_config_name)

        gpu = farm_case.run(config, settings["farm"], server)
        return [relabel(r, "the CPU", "") for r in on_cpu] + [relabel(r, side.label, "_gpu") for r in gpu]
    raise ValueError(name)


def gpu_side(torch_on_cpu: bool, tmp: Path) -> gpu_case.GpuSide:
    """The server that stands for the GPU, or SystemExit with what is missing."""
    if torch_on_cpu:
        return gpu_case.GpuSide(torch_on_cpu_repository(tmp / "models"), None, "the torch forward on the CPU")
    probe = probe_gpus()
    if probe.count < 1:
        raise SystemExit(f"--gpu: {probe.detail}. Run it on a GPU host with the gpu extra "
                         "(pip install -e '.[gpu]'), or add --torch-on-cpu to check the script here.")
    return gpu_case.GpuSide(MODEL_REPOSITORY, GPU_CONFIG_NAME, f"the GPU ({probe.detail})")


def _exit_on_sigterm(signum, frame) -> None:
    """SIGTERM unwinds like Ctrl-C: servers stop, shared-memory regions and temporary folders are removed."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke version: few repetitions, few events (< 2 min)")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT, help="where BENCHMARKS.md and benchmarks.json go")
    parser.add_argument("--only", action="append", choices=sorted({*CASES, *GPU_CASES}),
                        help="run only these cases (repeatable)")
    parser.add_argument("--config", help="farm configuration file (TOML); default: the built-in default")
    parser.add_argument("--gpu", action="store_true", help="the GPU suite: the models on the CPU vs on the GPU")
    parser.add_argument("--torch-on-cpu", action="store_true",
                        help="with --gpu on a host without a GPU: the torch forward on the CPU stands for the GPU")
    parser.add_argument("--plan-section-only", action="store_true",
                        help="no measurement: render BENCHMARKS.md's last section (the capacity model's validation, "
                             "from docs/plan/validation.json) again after a run of scripts/validate_plan.py")
    args = parser.parse_args(argv)
    if args.plan_section_only:
        report.replace_plan_section(args.out_dir / "BENCHMARKS.md")
        log(f"rendered the validation section of {args.out_dir / 'BENCHMARKS.md'} again")
        return 0
    if args.torch_on_cpu and not args.gpu:
        parser.error("--torch-on-cpu goes with --gpu")
    cases = args.only or (GPU_CASES if args.gpu else CASES)
    wrong = [c for c in cases if c not in (GPU_CASES if args.gpu else CASES)]
    if wrong:
        parser.error(f"case {wrong[0]} is not part of the {'GPU ' if args.gpu else ''}suite")
    suffix = "-gpu" if args.gpu else ""
    with tempfile.TemporaryDirectory(prefix="tsim-bench-gpu-") as tmp:
        side = gpu_side(args.torch_on_cpu, Path(tmp)) if args.gpu else None
        return _run_suite(args, argv, cases, suffix, side)


def _run_suite(args: argparse.Namespace, argv: list[str] | None, cases, suffix: str, side) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    settings = QUICK if args.quick else FULL
    config = load_config(args.config)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: list[CaseResult] = []
    load: dict[str, dict[str, float]] = {}
    for name in cases:
        log(f"{name} ...")
        meter = LoadMeter()
        results += run_gpu_case(name, config, settings, side) if side else run_case(name, config, settings)
        load[name] = meter.stop()
        log(f"{name}: {load[name]['seconds']:.0f} s; other processes on the machine used "
            f"{load[name]['other_cores']:.2f} cores meanwhile")
    given = argv if argv is not None else sys.argv[1:]
    command = " ".join([".venv/bin/python scripts/bench.py", *(shlex.quote(a) for a in given)])
    meta = {"command": command, "quick": args.quick, "machine": machine(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "duration_s": time.monotonic() - started, "config": args.config or "built-in default",
            "other_load": load}
    if side:
        meta["gpu_side"] = side.label
    json_path, md_path = args.out_dir / f"benchmarks{suffix}.json", args.out_dir / f"BENCHMARKS{suffix}.md"
    report.write_json(json_path, meta, results)
    report.write_markdown(md_path, meta, results)
    for r in results:
        for t in r.targets:
            log(f"{'met    ' if t.met else 'NOT MET'} {t.name}: {t.measured:.3g} (target {t.op} {t.limit:g})")
    log(f"wrote {md_path} and {json_path} in {meta['duration_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
