"""Questions the model answers: the highest sustained rate of a farm (the one definition of
`trigger_sim.sustained`, judged on the model's summary), and the smallest pool of servers
and event slots per worker that keeps the total-latency p99 within a budget with nothing
lost (sustained, and at most 1 % of events on the local fallback), plus a sweep over
nodes x servers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from trigger_sim import sustained
from trigger_sim.planning.calibration import Calibration
from trigger_sim.planning.model_summary import simulate
from trigger_sim.planning.spec import ArrivalSpec, FarmSpec, PlanSpec

MODEL_EVENTS = 4000  # events per model run of a rate search: >= 1,200 for the verdict, cheap to simulate


def run_rate(cal: Calibration, farm: FarmSpec, rate_hz: float, events: int, seed: int, pattern: str = "poisson",
             progress: Callable | None = None) -> dict[str, Any]:
    """One simulated run at `rate_hz`: its summary."""
    spec = PlanSpec(ArrivalSpec(rate_hz=rate_hz, pattern=pattern), farm, events=events, seed=seed)
    return simulate(spec, cal, progress)


def saturation(cal: Calibration, farm: FarmSpec, pattern: str = "poisson", min_hz: float = 10.0, max_hz: float = 1e7,
               repeats: int = 3, max_probes: int = 16, events: int | Callable[[float], int] = MODEL_EVENTS, seed: int = 1,
               min_step: float = 0.02) -> sustained.SearchResult:
    """The highest rate the modelled farm sustains, by the search and verdict of
    `trigger_sim.sustained` (budget: `farm.budget_ms`). `events`: per run, or a function of
    the rate (to run as long as the real scan's runs: near saturation a longer run fails
    where a shorter one passes, its queue having had less time to grow). The model has no
    run-to-run noise beyond its seeds, so its bracket can be finer than the real search's 5 %."""

    def one(rate: float, repeat: int) -> tuple[bool, float]:
        n = events(rate) if callable(events) else events
        s = run_rate(cal, farm, rate, n, sustained.repeat_seed(seed, repeat), pattern)
        return sustained.verdict(s, farm.budget_ms)[0], sustained.throughput_hz(s)

    return sustained.search(one, min_hz, min_hz, max_hz, repeats, max_probes, min_step)


@dataclass(frozen=True)
class Verdict:
    """Whether a farm meets the budget at the rate asked, and what it gave."""

    ok: bool
    reasons: list[str]
    p50_ms: float
    p99_ms: float
    fallback_fraction: float
    deadtime_fraction: float
    summary: dict[str, Any]


MAX_FALLBACK_FRACTION = 0.01  # a farm sized for its servers does not lean on the workers' fallback
# A pool busier than this has no headroom: at a utilisation near 1 the queue grows as the
# square root of time, so a short simulation passes a pool that a long run would not.
MAX_SERVER_UTILISATION = 0.9


def judge(summary: dict[str, Any], budget_ms: float, max_fallback: float = MAX_FALLBACK_FRACTION,
          max_utilisation: float = MAX_SERVER_UTILISATION) -> Verdict:
    """The sustained verdict; at most `max_fallback` of the events decided by the local
    fallback (an overloaded pool whose calls time out would otherwise pass on CPU alone);
    no model's instances busier than `max_utilisation` on average over the pool."""
    ok, reasons = sustained.verdict(summary, budget_ms)
    fallback = summary["model"]["fallback_fraction"]
    if fallback > max_fallback:
        ok = False
        reasons.append(f"fallback {fallback:.1%} > {max_fallback:.1%}")
    servers = summary["model"]["servers"]
    for model in servers[0]["models"] if servers else ():
        util = sum(s["models"][model]["utilisation"] for s in servers) / len(servers)
        if util > max_utilisation:
            ok = False
            reasons.append(f"{model} instances {util:.0%} busy > {max_utilisation:.0%}")
    total = summary["latency_ms"]["total"]
    return Verdict(ok, reasons, total["p50"], total["p99"], summary["model"]["fallback_fraction"],
                   summary["level1"]["deadtime_fraction"], summary)


def smallest_farm(cal: Calibration, farm: FarmSpec, rate_hz: float, budget_ms: float, events: int, max_servers: int,
                  slot_options: tuple[int, ...] = (1, 2, 4, 8), seed: int = 1, pattern: str = "poisson",
                  max_fallback: float = MAX_FALLBACK_FRACTION, on_probe: Callable[[FarmSpec, Verdict], None] | None = None) -> tuple[FarmSpec | None, Verdict | None]:
    """The fewest servers (then the fewest slots per worker) with which `farm` sustains
    `rate_hz` within `budget_ms`: for each slot count a bisection on the number of servers
    (more servers never hurt), keeping the best. (None, None) when even `max_servers` fail."""
    best: tuple[FarmSpec, Verdict] | None = None
    for slots in sorted(slot_options):
        cache: dict[int, Verdict] = {}

        def passes(n: int) -> bool:
            if n not in cache:
                f = replace(farm, servers=n, slots_per_worker=slots, budget_ms=budget_ms)
                cache[n] = judge(run_rate(cal, f, rate_hz, events, seed, pattern), budget_ms, max_fallback)
                if on_probe:
                    on_probe(f, cache[n])
            return cache[n].ok

        limit = max_servers if best is None else best[0].servers - 1  # only a smaller pool can improve
        if limit < 1 or not passes(limit):
            continue
        low, high = 0, limit  # low fails (or is 0), high passes
        while high - low > 1:
            mid = (low + high) // 2
            if passes(mid):
                high = mid
            else:
                low = mid
        best = (replace(farm, servers=high, slots_per_worker=slots, budget_ms=budget_ms), cache[high])
    return best if best else (None, None)


def sweep(cal: Calibration, farm: FarmSpec, rate_hz: float, budget_ms: float, events: int, nodes: list[int],
          servers: list[int], seed: int = 1, pattern: str = "poisson", max_fallback: float = MAX_FALLBACK_FRACTION,
          on_cell: Callable[[int, int, Verdict], None] | None = None) -> list[dict[str, Any]]:
    """Every nodes x servers combination at `rate_hz`: one row each."""
    rows = []
    for n in nodes:
        for g in servers:
            f = replace(farm, nodes=n, servers=g, budget_ms=budget_ms)
            v = judge(run_rate(cal, f, rate_hz, events, seed, pattern), budget_ms, max_fallback)
            if on_cell:
                on_cell(n, g, v)
            rows.append({"nodes": n, "servers": g, "slots_per_worker": f.slots_per_worker, "ok": v.ok,
                         "p50_ms": v.p50_ms, "p99_ms": v.p99_ms, "fallback_fraction": v.fallback_fraction,
                         "deadtime_fraction": v.deadtime_fraction,
                         "throughput_hz": sustained.throughput_hz(v.summary), "why_not": "; ".join(v.reasons)})
    return rows
