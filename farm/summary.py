"""The run summary as plain data (what `--json` writes and the report prints)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from farm.collector import Collector
from trigger_sim import clock
from trigger_sim.accounting import ACCEPTED, DEBUG, REJECTED
from trigger_sim.hlt.sequence import STEPS, WAITS
from trigger_sim.latency_buckets import LatencyBuckets
from trigger_sim.windows import window_stats

WINDOW_S = 1.0  # measurement windows in the summary (the first one is warm-up, skipped)
# WAITS: an event's time set aside by a worker with several slots (absent with one slot)
LATENCY_ORDER = ("assign", "build", "queue", "transfer", *STEPS, *WAITS, "worker_total", "total")


def summarise(collector: Collector, n_workers: int, triton_url: str, triton_mode: str, wall_s: float,
              output_dir: str | None, problems: list[str], restarts: int = 0, model_reloads: int = 0,
              monitor_probe_failures: list[str] | None = None, server_shm_prefix: str = "",
              client_shm_prefix: str = "", server_model_config: str = "", interrupted_by: str = "",
              events_table: str | None = None, server_restarts: dict[str, int] | None = None,
              deadlines_ms: dict[str, float] | None = None) -> dict[str, Any]:
    ledger = collector.ledger
    end = collector.end
    # Without the readout's END the number of Level-1 accepts is unknown: the highest id seen
    # is a lower bound, and the run is reported as not fully accounted.
    ids = collector.expected_ids()
    ranges = ids.ranges if ids is not None else ([(0, ledger.highest_id + 1)] if ledger.highest_id >= 0 else [])
    l1_accepted = len(ids) if ids is not None else ledger.highest_id + 1
    lost = ledger.lost_in_ranges(ranges)
    span_s = ((collector.last_decided_ns - collector.first_decided_ns) / clock.NS_PER_S
              if collector.first_decided_ns is not None else 0.0)
    end = end or {}
    elapsed_s = float(end.get("elapsed_s", 0.0))
    vetoed_busy = int(end.get("vetoed_busy", 0))
    worker_counters = list(collector.worker_stats.values())
    paths = collector.inference_paths
    return {
        "events": {
            "l1_accepted": l1_accepted,
            "l1_count_known": bool(collector.end),
            "l1_id_chunks": collector.id_chunks_received,
            "accepted": ledger.outcomes[ACCEPTED],
            "rejected": ledger.outcomes[REJECTED],
            "debug": ledger.outcomes[DEBUG],
            "lost": lost,
            "lost_l1_ids": ledger.missing_in_ranges(ranges, limit=20) if lost else [],
            "duplicate_results_refused": ledger.duplicates,
            "duplicate_l1_ids": ledger.duplicate_ids,
            "decision_digest": f"{collector.decision_digest:016x}",
        },
        "streams": dict(sorted(ledger.streams.items())),
        "debug_streams": dict(sorted(collector.debug_reasons.items())),
        "chains": dict(sorted(ledger.chains.items())),
        "inference": {
            "server": triton_url or "none",
            "server_mode": triton_mode,
            # the model configurations a local server loaded: "cpu" (config.pbtxt) or "gpu" (configs/gpu.pbtxt)
            "server_model_config": server_model_config or "unknown",
            "triton_calls": paths.get("triton", 0),
            "fallback_calls": paths.get("fallback", 0),
            "skipped_nothing_to_infer": paths.get("skipped", 0),
            "fallback_reasons": dict(collector.fallback_reasons),
            "triton_failures": sum(w.get("triton_failures", 0) for w in worker_counters),
            "models": _per_model(worker_counters, deadlines_ms or {}),
            "servers": per_server(worker_counters, server_restarts or {}),
            "breaker_opened": sum(w.get("breaker_opened", 0) for w in worker_counters),
            "model_reloads": model_reloads,
            "server_shm_prefix": server_shm_prefix,  # a local server's /dev/shm files: all removed at its stop
            "client_shm_prefix": client_shm_prefix,  # the workers' request regions in /dev/shm: removed at the end
            "monitor_probe_failures": monitor_probe_failures or [],
        },
        "latency_ms": collector.latency.summary(LATENCY_ORDER),
        "level1": {
            "rate_hz_configured": collector.config.readout.rate_hz,
            "pattern": collector.config.readout.pattern,
            "input_rate_hz": l1_accepted / elapsed_s if elapsed_s else 0.0,
            "vetoed_busy": vetoed_busy,
            "vetoed_readout_slow": int(end.get("vetoed_slow", 0)),
            "not_sent_at_stop": int(end.get("not_sent_at_stop", 0)),  # slots given up while stopping: no fragment left, not accepts
            # farm dead time: Level-1 slots lost because the farm pushed back (not the
            # emulator's readout being too slow to generate events, reported apart)
            "deadtime_fraction": vetoed_busy / (vetoed_busy + l1_accepted) if vetoed_busy + l1_accepted else 0.0,
            "busy_s": float(end.get("busy_s", 0.0)),
            "faults_injected": dict(end.get("faults_injected", {})),
            "elapsed_s": elapsed_s,
        },
        "throughput": {
            "decided_per_s": ledger.decided / span_s if span_s > 0 else 0.0,
            "accepted_per_s": ledger.outcomes[ACCEPTED] / span_s if span_s > 0 else 0.0,
        },
        "windows": window_stats(np.frombuffer(collector.timeline_ns, np.int64), np.frombuffer(collector.timeline_total_ms),
                                window_s=WINDOW_S, skip_s=WINDOW_S),
        "builder": collector.builder_stats or {},
        "workers": {"count": n_workers, "restarts": restarts,
                    # each worker's own counters (its latest report, sent every second) and the
                    # events the collector counted as decided by it
                    "per_worker": {k: {**collector.worker_stats.get(k, {}), "decided": collector.decided_by_worker.get(k, 0)}
                                   for k in sorted(set(collector.worker_stats) | set(collector.decided_by_worker))}},
        "collector": {"bad_messages": collector.bad_messages, "bad_message_kinds": dict(collector.bad_message_kinds.most_common(10)), "write_errors": collector.write_errors, "write_error_texts": collector.write_error_texts,
                      "refused_peers": collector.refused_peers,
                      "refused_second_outcomes": [list(d) for d in collector.duplicate_sources[:20]]},
        "output": {"directory": output_dir, "files": sorted(f"{s}.tsrec" for s in collector.writers),
                   "events_table": events_table},  # the per-event table's path (None: not written)
        "problems": sorted(set(p for p in [*problems, *_shared_memory_off(worker_counters)] if p)),
        # the signal that stopped the input (an operator's stop, not a problem): the events
        # already accepted were drained unless "problems" says otherwise
        "interrupted_by": interrupted_by,
        "wall_s": wall_s,
    }


def _per_model(worker_counters: list[dict[str, Any]], deadlines_ms: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Calls per model and path, summed over workers (an event makes one call per model),
    and the deadline each model's calls were given."""
    out: dict[str, dict[str, Any]] = {}
    for w in worker_counters:
        for model, c in (w.get("models") or {}).items():
            m = out.setdefault(model, {"triton_calls": 0, "fallback_calls": 0, "skipped": 0, "expired": 0, "triton_failures": 0,
                                       "shared_memory_calls": 0})
            for key in m:
                m[key] += int(c.get(key, 0))
    for model, deadline_ms in deadlines_ms.items():
        out.setdefault(model, {})["deadline_ms"] = deadline_ms
    return dict(sorted(out.items()))


def per_server(worker_counters: list[dict[str, Any]], restarts: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Per server address: requests sent (`calls`, summed over workers and models), those
    that failed, p50/p99 of the answered ones (from the workers' summed latency buckets)
    and how often the farm restarted it (local servers only)."""
    calls: Counter = Counter()
    failures: Counter = Counter()
    latency: dict[str, LatencyBuckets] = {}
    for w in worker_counters:
        for address, c in (w.get("servers") or {}).items():
            calls[address] += int(c.get("calls", 0))
            failures[address] += int(c.get("failures", 0))
            try:
                latency.setdefault(address, LatencyBuckets()).merge(LatencyBuckets.from_pairs(c.get("latency_buckets") or []))
            except (TypeError, ValueError):
                pass  # a malformed report: counts still add up, its latencies are left out
    out = {}
    for address in sorted(set(calls) | set(restarts)):
        h = latency.get(address, LatencyBuckets())
        out[address] = {"calls": calls[address], "failures": failures[address], "p50_ms": h.percentile_ms(50),
                        "p99_ms": h.percentile_ms(99), "answered": h.n, "restarts": int(restarts.get(address, 0))}
    return out


def _shared_memory_off(worker_counters: list[dict[str, Any]]) -> list[str]:
    """Why a worker stopped sending requests through shared memory, per model (a problem to see)."""
    return sorted({f"{model}: shared memory turned off: {c['shared_memory_off']}"
                   for w in worker_counters for model, c in (w.get("models") or {}).items() if c.get("shared_memory_off")})
