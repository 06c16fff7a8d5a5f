"""What "sustained" means, for one farm run and for a Level-1 rate, and the search for the
highest sustained rate: plain decisions on a run's summary dict, no I/O. The rate scan
(`farm.scan`) and the benchmark's farm case (scripts/bench_cases/farm_case.py) both use this
module, so they cannot disagree on what they report.

A run is sustained when every one of these holds (`Criteria`, checked by `verdict`):

- nothing lost: every Level-1 accept has an outcome;
- no event in a debug stream (HltTimeout, HltError, MissingData). Each one is an event the
  farm did not decide normally: over its budget, an error, fragments missing. None is allowed,
  not a small fraction: timeouts are the first sign of overload (they appear before the p99
  crosses the budget), and a sustained rate is one where the farm does not need them;
- no problem reported by the run (a process died, the drain stalled, shared memory off);
- dead time, the Level-1 slots vetoed by the farm's back-pressure, at most 1 % of the slots;
  likewise the slots the readout emulator was too slow to fill (else the rate asked for was
  not the rate offered);
- the throughput keeps up with the input: the mean decided rate over the last three
  measurement windows is at least 0.9 x the delivered Level-1 rate (those windows hold
  >= 900 events, Poisson noise about 3.3 %: 0.9 is 3 standard deviations below);
- the windows are stable: those three windows' throughputs lie within 15 % of their mean.
  Each window holds >= 300 events, so a window's deviation from the three-window mean has a
  Poisson spread of sqrt(2/3)/sqrt(300) = 4.7 %: 15 % is 3.2 of those, under 0.5 % of steady
  runs fail on noise alone (10 %, the tolerance used before, failed about 9 %);
- the total-latency p99 is under the budget, computed from >= 1,000 decided events. With
  fewer the 99th percentile is the third- or fourth-worst event, not a percentile: such a
  run cannot pass ("too few events for a p99"). `run_seconds` sizes runs for it.

A rate is sustained when every run at it passes, each run with its own seed
(`repeat_seed`: the Poisson arrivals and the events differ from run to run, so a
confirmation is a new measurement, not a replay of the same arrivals).

The search (`search`) brackets the highest sustained rate between the highest rate found
sustained (low_ok) and the lowest found not (high_bad): doubling up from a sustained rate,
halving down from a failed one, then bisecting on a log scale. It stops when the bracket is
no finer than the measurement can resolve: high_bad / low_ok - 1 <= resolution, where the
resolution is the larger of MIN_RELATIVE_STEP (5 %) and the relative spread (max - min) /
median of the throughput between runs that passed at the same rate. 5 %: a run of >= 1,000
events has a Poisson spread of <= 1/sqrt(1000) = 3.2 % in its delivered rate, two runs at
the same rate differ by sqrt(2) x that = 4.5 % typically; a finer bracket would be decided
by noise. It also stops after a set number of probes (the caller's time budget).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trigger_sim.windows import merge, stable

MIN_RELATIVE_STEP = 0.05  # the finest bracket the search resolves (see the module docstring)


@dataclass(frozen=True)
class Criteria:
    """The thresholds of a sustained run (see the module docstring for why each value)."""

    min_events: int = 1000  # decided events a p99 is computed from, at least
    max_lost: int = 0
    max_debug_events: int = 0
    max_deadtime_fraction: float = 0.01  # Level-1 slots vetoed by back-pressure / all slots
    max_readout_slow_fraction: float = 0.01  # slots the readout emulator could not fill / all slots
    keep_up_fraction: float = 0.9  # decided per second / delivered Level-1 rate
    min_window_events: int = 300  # measurement windows are merged until each holds this many
    stable_windows: int = 3  # the last this many windows are judged
    stable_tolerance: float = 0.15  # each within this fraction of their mean


CRITERIA = Criteria()


def windows(summary: dict[str, Any], criteria: Criteria = CRITERIA) -> list[dict[str, float]]:
    """The run's measurement windows merged to at least `min_window_events` events each."""
    return merge(summary.get("windows", []), criteria.min_window_events)


def throughput_hz(summary: dict[str, Any], criteria: Criteria = CRITERIA) -> float:
    """Decided events per second: the mean over the judged windows (the whole run's if none)."""
    judged = windows(summary, criteria)[-criteria.stable_windows:]
    if judged:
        return sum(w["throughput_hz"] for w in judged) / len(judged)
    return float(summary["throughput"]["decided_per_s"])


def is_stable(summary: dict[str, Any], criteria: Criteria = CRITERIA) -> bool:
    """The last `stable_windows` merged windows agree within `stable_tolerance`."""
    return stable(windows(summary, criteria), criteria.stable_tolerance, criteria.stable_windows)


def p99_events(summary: dict[str, Any]) -> int:
    """How many decided events the total-latency percentiles come from."""
    return int(summary["latency_ms"].get("total", {}).get("n", 0))


def verdict(summary: dict[str, Any], budget_ms: float, criteria: Criteria = CRITERIA) -> tuple[bool, list[str]]:
    """Whether a run (its `farm.summary` dict) sustained its rate, and every reason it did not."""
    ev, l1 = summary["events"], summary["level1"]
    reasons: list[str] = []
    if ev["lost"] > criteria.max_lost:
        reasons.append(f"{ev['lost']} lost")
    if ev["debug"] > criteria.max_debug_events:
        reasons.append(f"{ev['debug']} in debug streams {summary.get('debug_streams', {})}")
    if summary.get("problems"):
        reasons.append("; ".join(summary["problems"]))
    slots = ev["l1_accepted"] + l1["vetoed_busy"] + l1["vetoed_readout_slow"]
    if l1["vetoed_busy"] > criteria.max_deadtime_fraction * slots:
        reasons.append(f"dead time {l1['vetoed_busy'] / slots:.1%} (farm back-pressure)")
    if l1["vetoed_readout_slow"] > criteria.max_readout_slow_fraction * slots:
        reasons.append(f"readout emulator too slow for {l1['vetoed_readout_slow'] / slots:.1%} of the slots")
    decided_hz, input_hz = throughput_hz(summary, criteria), float(l1["input_rate_hz"])
    if not decided_hz >= criteria.keep_up_fraction * input_hz:
        reasons.append(f"throughput {decided_hz:.1f}/s < {criteria.keep_up_fraction:g} x input {input_hz:.1f} Hz")
    if not is_stable(summary, criteria):
        judged = ", ".join(f"{w['throughput_hz']:.1f}" for w in windows(summary, criteria)[-criteria.stable_windows:])
        reasons.append(f"windows not stable within {criteria.stable_tolerance:.0%} ({judged or 'none'} per s; "
                       f"{criteria.stable_windows} windows of >= {criteria.min_window_events} events needed)")
    n = p99_events(summary)
    if n < criteria.min_events:
        reasons.append(f"too few events for a p99: {n} < {criteria.min_events}")
    else:
        p99 = float(summary["latency_ms"]["total"]["p99"])
        if not p99 < budget_ms:
            reasons.append(f"total p99 {p99:.0f} ms >= budget {budget_ms:g} ms")
    return not reasons, reasons


def events_needed(criteria: Criteria = CRITERIA) -> int:
    """Events a judged run is sized for: the p99's minimum, and one window more than judged
    (Poisson arrivals fall short of the mean, and the last partial window is dropped)."""
    return max(criteria.min_events, (criteria.stable_windows + 1) * criteria.min_window_events)


def run_seconds(rate_hz: float, overhead_s: float, criteria: Criteria = CRITERIA) -> float:
    """How long a run at `rate_hz` lasts to hold `events_needed` events, plus `overhead_s`
    (the skipped warm-up window, the dropped last one, start-up)."""
    if not rate_hz > 0:
        raise ValueError("rate_hz must be > 0")
    return events_needed(criteria) / rate_hz + overhead_s


def repeat_seed(base_seed: int, run_index: int) -> int:
    """The seed of the `run_index`-th run of a measurement (0, 1, ...): every run its own."""
    return (base_seed + 1 + run_index) % 2**32


# -- the search ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    """The runs at one rate, in order; they stop at the first failure."""

    rate_hz: float
    passed: tuple[bool, ...]
    throughput_hz: tuple[float, ...]

    @property
    def sustained(self) -> bool:
        return bool(self.passed) and all(self.passed)


def resolution(probes: list[Probe] | tuple[Probe, ...], min_step: float = MIN_RELATIVE_STEP) -> float:
    """The finest relative bracket worth measuring: `min_step`, or the largest relative spread
    (max - min) / median of throughput between runs that passed at the same rate, if larger."""
    spreads = []
    for p in probes:
        ok = [t for t, passed in zip(p.throughput_hz, p.passed) if passed]
        if len(ok) >= 2 and statistics.median(ok) > 0:
            spreads.append((max(ok) - min(ok)) / statistics.median(ok))
    return max([min_step, *spreads])


def next_rate(low_ok: float | None, high_bad: float | None, min_hz: float, max_hz: float,
              resolution: float) -> float | None:
    """The next rate to probe, or None when the search is done (pure).

    Always inside the bracket: above low_ok, below high_bad, within [min_hz, max_hz].
    None when the bracket is within `resolution`, when max_hz was sustained, or when min_hz
    was not.
    """
    if low_ok is None and high_bad is None:
        raise ValueError("nothing measured yet: the first rate is the caller's")
    if high_bad is None:
        return None if low_ok >= max_hz else min(max_hz, 2 * low_ok)
    if low_ok is None:
        return None if high_bad <= min_hz else max(min_hz, high_bad / 2)
    if high_bad / low_ok - 1 <= resolution:
        return None
    middle = math.sqrt(low_ok * high_bad)
    return middle if low_ok < middle < high_bad else None  # None only for a bracket below float precision


@dataclass(frozen=True)
class SearchResult:
    """What the search found: the highest rate sustained (None: not even the lowest tried)."""

    sustained_hz: float | None
    failed_hz: float | None  # the lowest rate not sustained (None: every rate tried was)
    probes: tuple[Probe, ...]
    resolution: float  # relative, when it stopped
    stopped: str  # why it stopped


def search(run: Callable[[float, int], tuple[bool, float]], start_hz: float, min_hz: float, max_hz: float,
           repeats: int, max_probes: int, min_step: float = MIN_RELATIVE_STEP) -> SearchResult:
    """The highest sustained rate between `min_hz` and `max_hz`, starting at `start_hz`.

    `run(rate_hz, repeat)` measures one run (repeat 0, 1, ...) and returns (passed, its
    throughput). A rate is run up to `repeats` times, stopping at the first failure; it is
    sustained when all `repeats` runs pass. At most `max_probes` rates are tried.
    """
    if not 0 < min_hz <= max_hz or repeats < 1 or max_probes < 1:
        raise ValueError("need 0 < min_hz <= max_hz, repeats >= 1, max_probes >= 1")
    low_ok = high_bad = None
    probes: list[Probe] = []
    rate: float | None = min(max(start_hz, min_hz), max_hz)
    while rate is not None:
        if len(probes) == max_probes:
            return SearchResult(low_ok, high_bad, tuple(probes), resolution(probes, min_step),
                                f"probe limit ({max_probes}) reached")
        passed: list[bool] = []
        throughput: list[float] = []
        while len(passed) < repeats and all(passed):
            ok, hz = run(rate, len(passed))
            passed.append(ok)
            throughput.append(hz)
        probe = Probe(rate, tuple(passed), tuple(throughput))
        probes.append(probe)
        if probe.sustained:
            low_ok = rate if low_ok is None else max(low_ok, rate)
        else:
            high_bad = rate if high_bad is None else min(high_bad, rate)
        rate = next_rate(low_ok, high_bad, min_hz, max_hz, resolution(probes, min_step))
    res = resolution(probes, min_step)
    if high_bad is None:
        why = f"sustained at the highest rate allowed ({max_hz:g} Hz)"
    elif low_ok is None:
        why = f"not sustained at the lowest rate allowed ({min_hz:g} Hz)"
    else:
        why = f"bracket {low_ok:.1f}-{high_bad:.1f} Hz within the resolution {res:.1%}"
    return SearchResult(low_ok, high_bad, tuple(probes), res, why)
