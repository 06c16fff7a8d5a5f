"""Case b: the numba feature kernels against plain-numpy references of the same algorithms.

Two ratios, never mixed:

- speed-up (`<kernel>.pu<N>.speedup`, the headline and the targets): numba / numpy running the
  SAME algorithm (each `*_reference` follows its kernel step by step, vectorised), i.e. what
  compilation buys.
- algorithmic gain (`hit_graph.pu<N>.algorithmic_gain`, its own table): numpy all pairs
  (`build_hit_graph_all_pairs`, the tests' brute-force oracle) / numpy with the kernel's phi
  windows, i.e. what the windowed search buys, with no compilation in it.

Events and kernels come from `scripts/bench_kernels.py` (the same synthetic tracker and
calorimeter events, the same cuts). Each repetition times numba, numpy (and, for the hit
graph, numpy all pairs) in turn on the same event, so each ratio is taken per repetition,
side by side. A sample is the median of enough calls to last about 20 ms (single calls of a
few microseconds are mostly timer noise), or one call when a call is slower than that.
Warm-up: the numba kernels are loaded (`warm_up`), each numpy function runs once on the
smallest event, and each implementation runs once on each event before it is timed; a numpy
call slower than a second (all pairs at pile-up 200) is kept as the first sample rather than
thrown away, as its code is already warm.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import bench_kernels as bk
from bench_cases.common import CaseResult, Target, fmt, log, stats
from trigger_sim.kernels import calo_jets, em_clusters
from trigger_sim.kernels._towers import check_tower_inputs

TARGET_PILE_UP = 60
TARGET_RATIO = 20.0
SAMPLE_S = 0.02  # a numba sample lasts about this long
SLOW_WARM_UP_S = 1.0  # numpy calls slower than this are warmed on the smallest event

KERNELS: list[tuple[str, Callable[..., dict[str, Any]], Callable[..., Any], Callable[..., Any]]] = [
    ("hit_graph", bk.tracker_event, bk.build_hit_graph, bk.build_hit_graph_reference),
    ("calo_jets", bk.calo_event, bk.find_jets, bk.find_jets_reference),
    ("em_clusters", bk.em_calo_event, bk.find_em_clusters, bk.find_em_clusters_reference),
    ("graph_features", bk.graph_event, bk.graph_features, bk.graph_features_reference),
    ("track_building", bk.scored_graph_event, bk.build_tracks, bk.build_tracks_reference),
    ("track_walk", bk.walk_event, bk.walk_tracks, bk.walk_tracks_reference),
    ("helix_fit", bk.track_fit_event, bk.fit_helices, bk.fit_helices_reference),
]
# A numpy baseline with a different (slower) algorithm: only for the algorithmic-gain table.
ALGORITHMIC_BASELINES: dict[str, tuple[str, Callable[..., Any]]] = {
    "hit_graph": ("all pairs", bk.build_hit_graph_all_pairs),
}


# Why a kernel's ratio can stay under the target: its numpy reference has no Python loop.
VECTORISED_REFERENCE_LIMITS = {
    "hit_graph": "the reference runs the kernel's windowed search with whole-array operations over the candidate "
                 "pairs (the windows expanded with np.repeat, then a few dozen passes over every candidate, each a "
                 "gather, one arithmetic operation or one comparison); the kernel makes one pass, stops at a pair's "
                 "first failed cut and keeps no temporaries.",
    "graph_features": "the reference is whole-array arithmetic (a gather per edge end, a few subtractions "
                      "and divisions), as the kernel is: numba only saves numpy's temporaries; both take about a "
                      "millisecond for 40,000 edges.",
    "track_building": "the reference makes the kernel's linear passes with whole-array operations (a scatter-max "
                      "and scatter-min per hit for the best edges, pointer doubling along the chains); the kernel's "
                      "remaining time is pointer-chasing along chains.",
    "helix_fit": "about half of either implementation's time is in the maths library (a sine, cosine and arcsine "
                 "per hit, atan2 and asinh per track), which numba calls no faster than numpy does.",
}


@dataclass(frozen=True)
class Settings:
    repetitions: int
    pile_ups: tuple[int, ...] = tuple(bk.HITS_PER_LAYER)


def sample_ms(func: Callable[..., Any], kwargs: dict[str, Any], calls: int) -> float:
    """Median time of `calls` calls, in ms (bench_kernels' measure)."""
    return bk.median_ms(func, kwargs, calls)


def timed_call_s(func: Callable[..., Any], kwargs: dict[str, Any]) -> float:
    t0 = time.perf_counter()
    func(**kwargs)
    return time.perf_counter() - t0


def calls_per_sample(single_s: float) -> int:
    """How many calls make a sample of about SAMPLE_S."""
    return max(1, min(10_000, int(SAMPLE_S / max(single_s, 1e-7))))


def measure_side_by_side(funcs: list[Callable[..., Any]], event: dict[str, Any],
                         repetitions: int) -> list[list[float]]:
    """Samples (ms) of each function on one event, in turn per repetition, after a warm-up call
    each; a warm-up call slower than SLOW_WARM_UP_S is kept as that function's first sample."""
    calls, samples = [], []
    for func in funcs:
        first_s = timed_call_s(func, event)
        calls.append(calls_per_sample(first_s))
        samples.append([1e3 * first_s] if first_s >= SLOW_WARM_UP_S else [])
    for rep in range(repetitions):
        for func, n_calls, ms in zip(funcs, calls, samples):
            if len(ms) <= rep:
                ms.append(sample_ms(func, event, n_calls))
    return samples


def ratio_stats(numerators_ms: list[float], denominators_ms: list[float]) -> dict[str, Any]:
    """Per-repetition ratios numerator / denominator (samples taken side by side)."""
    return stats([n / d for n, d in zip(numerators_ms, denominators_ms)], "×")


def _output_size(name: str, event: dict[str, Any], result: Any) -> str:
    if name == "hit_graph":
        return f"{event['layer'].size} hits, {result[1]} edges"
    if name == "graph_features":
        return f"{len(result[0])} nodes, {len(result[1])} edges"
    if name in ("track_building", "track_walk"):
        return f"{event['n_hits']} hits, {len(event['edges'])} edges, {result[1]} tracks"
    if name == "helix_fit":
        return f"{len(result)} tracks"
    return f"{len(result)} {'jets' if name == 'calo_jets' else 'clusters'}"


def anatomy_us(name: str, event: dict[str, Any], n: int = 200) -> dict[str, float]:
    """Per call (µs) of a tower kernel: the public function's input checks alone, and the compiled
    kernel alone (the kernels without a VECTORISED_REFERENCE_LIMITS entry)."""
    count_name = "max_jets" if name == "calo_jets" else "max_clusters"
    checks = functools.partial(check_tower_inputs, event["em_gev"], event["had_gev"], event["eta_centers"],
                               event["phi_centers"], event[count_name], count_name)
    if name == "calo_jets":
        kernel = functools.partial(calo_jets._find_jets_kernel, *checks(), float(event["seed_gev"]),
                                   float(event["radius"]), float(event["min_pt_gev"]), int(event["max_jets"]))
    else:
        kernel = functools.partial(em_clusters._find_em_clusters_kernel, *checks(), float(event["seed_gev"]),
                                   int(event["max_clusters"]))
    return {"input_checks_us": 1e3 * sample_ms(lambda: checks(), {}, n),
            "compiled_kernel_us": 1e3 * sample_ms(lambda: kernel(), {}, n)}


def kernel_limits(name: str, metrics: dict[str, dict[str, Any]], anatomy: dict[str, float], event: dict[str, Any]) -> str:
    key = f"{name}.pu{TARGET_PILE_UP}"
    fast_us = 1e3 * metrics[f"{key}.numba_ms"]["median"]
    ref_us = 1e3 * metrics[f"{key}.numpy_ms"]["median"]
    return (f"{name} at pile-up {TARGET_PILE_UP}: the numba call takes {fast_us:.1f} µs, of which the input checks "
            f"(dtypes, layout, shapes) {anatomy['input_checks_us']:.1f} µs and the compiled kernel, with numba's "
            f"dispatch, {anatomy['compiled_kernel_us']:.1f} µs. The numpy reference, the same algorithm, takes "
            f"{ref_us:.0f} µs: it is vectorised over a grid of only {event['em_gev'].size:,} towers, so there are "
            f"few Python-level loops for numba to remove, and at this size fixed per-call costs weigh on both sides.")


def measure_kernel(res: CaseResult, name: str, fast: Callable[..., Any], reference: Callable[..., Any],
                   pile_up: int, event: dict[str, Any], repetitions: int) -> tuple[list[str], list[str] | None]:
    """Time one kernel on one event into res.metrics; returns its speed-up row and, for a kernel
    with an algorithmic baseline, its algorithmic-gain row."""
    baseline = ALGORITHMIC_BASELINES.get(name)
    funcs = [fast, reference] + ([baseline[1]] if baseline else [])
    samples = measure_side_by_side(funcs, event, repetitions)
    key = f"{name}.pu{pile_up}"
    m = res.metrics
    m[f"{key}.numba_ms"] = stats(samples[0], "ms")
    m[f"{key}.numpy_ms"] = stats(samples[1], "ms")
    m[f"{key}.speedup"] = ratio_stats(samples[1], samples[0])  # same algorithm: the headline
    log(f"  {name} pile-up {pile_up}: numba {fmt(m[f'{key}.numba_ms'])} ms, numpy {fmt(m[f'{key}.numpy_ms'])} ms")
    row = [name, str(pile_up), fmt(m[f"{key}.numba_ms"]), fmt(m[f"{key}.numpy_ms"]), fmt(m[f"{key}.speedup"]),
           _output_size(name, event, fast(**event))]
    if not baseline:
        return row, None
    m[f"{key}.numpy_{baseline[0].replace(' ', '_')}_ms"] = baseline_ms = stats(samples[2], "ms")
    m[f"{key}.algorithmic_gain"] = ratio_stats(samples[2], samples[1])  # both numpy
    log(f"  {name} pile-up {pile_up}: numpy {baseline[0]} {fmt(baseline_ms)} ms")
    return row, [name, str(pile_up), baseline[0], fmt(baseline_ms), fmt(m[f"{key}.numpy_ms"]),
                 fmt(m[f"{key}.algorithmic_gain"])]


def add_target(res: CaseResult, name: str, event: dict[str, Any]) -> None:
    """The speed-up target at TARGET_PILE_UP and, when it is not met, what limits it."""
    target = Target(f"{name} speed-up over numpy, same algorithm, at pile-up {TARGET_PILE_UP}",
                    res.metrics[f"{name}.pu{TARGET_PILE_UP}.speedup"]["median"], ">=", TARGET_RATIO)
    res.targets.append(target)
    if target.met:
        return
    if name in VECTORISED_REFERENCE_LIMITS:
        gain = res.metrics.get(f"{name}.pu{TARGET_PILE_UP}.algorithmic_gain")
        gain_note = (f" The algorithm itself gains {gain['median']:.3g}× here (numpy against numpy, second table), "
                     "apart from this speed-up." if gain else "")
        res.limits.append(f"{name} at pile-up {TARGET_PILE_UP}: {VECTORISED_REFERENCE_LIMITS[name]}{gain_note}")
        return
    anatomy = anatomy_us(name, event)
    res.diagnostics[f"{name}.pu{TARGET_PILE_UP}"] = anatomy
    res.limits.append(kernel_limits(name, res.metrics, anatomy, event))


def run(settings: Settings) -> CaseResult:
    bk.warm_up()
    rng = np.random.default_rng(2024)
    res = CaseResult("kernels", "b) Feature kernels: numba vs numpy running the same algorithm")
    rows, gain_rows = [], []
    for name, make_event, fast, reference in KERNELS:
        events = {pile_up: make_event(pile_up, rng) for pile_up in settings.pile_ups}
        smallest = events[min(settings.pile_ups)]
        reference(**smallest)  # pages in numpy's code paths
        if name in ALGORITHMIC_BASELINES:
            ALGORITHMIC_BASELINES[name][1](**smallest)
        for pile_up, event in events.items():
            row, gain_row = measure_kernel(res, name, fast, reference, pile_up, event, settings.repetitions)
            rows.append(row)
            if gain_row:
                gain_rows.append(gain_row)
        if TARGET_PILE_UP in settings.pile_ups:
            add_target(res, name, events[TARGET_PILE_UP])
    res.tables.append((["kernel", "pile-up", "numba ms", "numpy ms (same algorithm)",
                        "speed-up × (numba / numpy, same algorithm)", "event"], rows))
    if gain_rows:
        res.tables.append((["kernel", "pile-up", "numpy baseline", "baseline ms", "numpy ms (kernel's algorithm)",
                            "algorithmic gain × (baseline / kernel's algorithm, both numpy; no numba in it)"],
                           gain_rows))
    res.notes.append("First table: each numba kernel against a numpy reference that runs the same algorithm "
                     "(the speed-up is what compilation buys; the targets use it). Second table: the hit graph's "
                     "algorithmic gain, numpy testing all pairs of hits on adjacent layers against numpy searching "
                     "the kernel's sorted phi windows; no numba in it.")
    res.notes.append(f"{settings.repetitions} repetitions per figure, the implementations in turn within each; a "
                     f"numba sample is the median of enough calls to last ~{SAMPLE_S * 1e3:.0f} ms, a numpy sample "
                     "one call when it is slower than that. Single-threaded (numba nogil, no parallel loops).")
    return res
