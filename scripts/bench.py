"""Benchmark suite: each part of the farm against the baseline it should come close to.

    .venv/bin/python scripts/bench.py                  # full suite (about 8 minutes on 2 cores)
    .venv/bin/python scripts/bench.py --quick          # smoke version, under 2 minutes
    .venv/bin/python scripts/bench.py --only builder --only inference --out-dir /tmp/b

Cases (one module each in scripts/bench_cases/):
  builder    a) event builder vs a bare ZeroMQ PUSH/PULL pipe moving the same frames
  kernels    b) numba feature kernels vs their numpy references, pile-up 0/60/200
  inference  c) worker inference path vs bare tritonclient; gRPC vs shared memory for a
                graph-sized request; dynamic batching on vs off
  farm       d) highest sustainable Level-1 rate vs the ideal rate, with simulated and with
                replayed events (and e) builder memory)

Every case runs several times after a warm-up; figures are medians with min and max, ratios
are measured side by side in one run. Writes BENCHMARKS.md and benchmarks.json to
--out-dir (default: the repository root). The exit code is 0 when every case ran, whether or
not its targets were met (the report says which were).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_cases, bench_kernels

from bench_cases import builder_case, farm_case, inference_case, kernels_case, report  # noqa: E402
from bench_cases.common import REPO_ROOT, CaseResult, LoadMeter, log, machine  # noqa: E402
from trigger_sim.config import FarmConfig, load_config  # noqa: E402

CASES = ("builder", "kernels", "inference", "farm")

FULL = {
    "builder": builder_case.Settings(n_events=2000, repetitions=5),
    "kernels": kernels_case.Settings(repetitions=5),
    "inference": inference_case.Settings(repetitions=10, calls_per_block=200, graph_calls_per_block=40,
                                         batching_seconds=3.0),
    "farm": farm_case.Settings(run_seconds=6.0, low_rate_hz=10.0, low_rate_runs=2, bisection_runs=5, confirm_runs=2,
                               overload_runs=2, warm_up_seconds=2.0, replay_events=400),
}
QUICK = {
    "builder": builder_case.Settings(n_events=150, repetitions=2),
    "kernels": kernels_case.Settings(repetitions=1),
    "inference": inference_case.Settings(repetitions=2, calls_per_block=50, graph_calls_per_block=10,
                                         batching_seconds=0.5, warm_up_calls=10, edge_calls_per_block=2),
    "farm": farm_case.Settings(run_seconds=2.0, low_rate_hz=10.0, low_rate_runs=1, bisection_runs=1, confirm_runs=0,
                               overload_runs=1, replay_events=100),
}


def run_case(name: str, config: FarmConfig, settings: dict) -> list[CaseResult]:
    if name == "builder":
        return [builder_case.run(config, settings["builder"])]
    if name == "kernels":
        return [kernels_case.run(settings["kernels"])]
    if name == "inference":
        return [inference_case.run(settings["inference"])]
    if name == "farm":
        return list(farm_case.run(config, settings["farm"]))
    raise ValueError(name)


def _exit_on_sigterm(signum, frame) -> None:
    """SIGTERM unwinds like Ctrl-C: servers stop, shared-memory regions and temporary folders are removed."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke version: few repetitions, few events (< 2 min)")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT, help="where BENCHMARKS.md and benchmarks.json go")
    parser.add_argument("--only", action="append", choices=CASES, help="run only these cases (repeatable)")
    parser.add_argument("--config", help="farm configuration file (TOML); default: the built-in default")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    settings = QUICK if args.quick else FULL
    config = load_config(args.config)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: list[CaseResult] = []
    load: dict[str, dict[str, float]] = {}
    for name in args.only or CASES:
        log(f"{name} ...")
        meter = LoadMeter()
        results += run_case(name, config, settings)
        load[name] = meter.stop()
        log(f"{name}: {load[name]['seconds']:.0f} s; other processes on the machine used "
            f"{load[name]['other_cores']:.2f} cores meanwhile")
    given = argv if argv is not None else sys.argv[1:]
    command = " ".join([".venv/bin/python scripts/bench.py", *(shlex.quote(a) for a in given)])
    meta = {"command": command, "quick": args.quick, "machine": machine(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "duration_s": time.monotonic() - started, "config": args.config or "built-in default",
            "other_load": load}
    report.write_json(args.out_dir / "benchmarks.json", meta, results)
    report.write_markdown(args.out_dir / "BENCHMARKS.md", meta, results)
    for r in results:
        for t in r.targets:
            log(f"{'met    ' if t.met else 'NOT MET'} {t.name}: {t.measured:.3g} (target {t.op} {t.limit:g})")
    log(f"wrote {args.out_dir / 'BENCHMARKS.md'} and {args.out_dir / 'benchmarks.json'} in {meta['duration_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
