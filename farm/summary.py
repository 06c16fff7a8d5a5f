"""The run summary as plain data (what `--json` writes and the report prints)."""

from __future__ import annotations

from typing import Any

from farm.collector import Collector
from trigger_sim import clock
from trigger_sim.accounting import ACCEPTED, DEBUG, REJECTED
from trigger_sim.hlt.sequence import STEPS

LATENCY_ORDER = ("build", "queue", "transfer", *STEPS, "worker_total", "total")


def summarise(collector: Collector, n_workers: int, triton_url: str, triton_mode: str, wall_s: float,
              output_dir: str | None, worker_problems: list[str]) -> dict[str, Any]:
    ledger = collector.ledger
    end = collector.end or {}
    l1_accepted = int(end.get("l1_accepted", ledger.decided))
    lost = ledger.lost(l1_accepted)
    decided_span_s = ((collector.last_decided_ns - collector.first_decided_ns) / clock.NS_PER_S
                      if collector.first_decided_ns else 0.0)
    elapsed_s = float(end.get("elapsed_s", 0.0))
    vetoed = int(end.get("vetoed_busy", 0)) + int(end.get("vetoed_slow", 0))
    paths = collector.inference_paths
    worker_counters = list(collector.worker_stats.values())
    return {
        "events": {
            "l1_accepted": l1_accepted,
            "accepted": ledger.outcomes[ACCEPTED],
            "rejected": ledger.outcomes[REJECTED],
            "debug": ledger.outcomes[DEBUG],
            "lost": lost,
            "duplicates": ledger.duplicates,
            "lost_l1_ids": ledger.missing(l1_accepted)[:20] if lost else [],
            "decision_digest": f"{collector.decision_digest:016x}",
        },
        "streams": dict(sorted(ledger.streams.items())),
        "debug_streams": dict(sorted(collector.debug_reasons.items())),
        "chains": dict(sorted(ledger.chains.items())),
        "inference": {
            "server": triton_url or "none",
            "server_mode": triton_mode,
            "triton_calls": paths.get("triton", 0),
            "fallback_calls": paths.get("fallback", 0),
            "skipped_no_jets": paths.get("skipped", 0),
            "fallback_reasons": dict(collector.fallback_reasons),
            "triton_failures": sum(w.get("triton_failures", 0) for w in worker_counters),
            "breaker_opened": sum(w.get("breaker_opened", 0) for w in worker_counters),
            "problems": sorted(set(p for p in worker_problems if p)),
        },
        "latency_ms": collector.latency.summary(LATENCY_ORDER),
        "level1": {
            "rate_hz_configured": collector.config.readout.rate_hz,
            "pattern": collector.config.readout.pattern,
            "input_rate_hz": l1_accepted / elapsed_s if elapsed_s else 0.0,
            "vetoed_busy": int(end.get("vetoed_busy", 0)),
            "vetoed_readout_slow": int(end.get("vetoed_slow", 0)),
            "deadtime_fraction": vetoed / (vetoed + l1_accepted) if vetoed + l1_accepted else 0.0,
            "busy_s": float(end.get("busy_s", 0.0)),
            "elapsed_s": elapsed_s,
        },
        "throughput": {
            "decided_per_s": ledger.decided / decided_span_s if decided_span_s > 0 else 0.0,
            "accepted_per_s": ledger.outcomes[ACCEPTED] / elapsed_s if elapsed_s else 0.0,
        },
        "builder": collector.builder_stats or {},
        "workers": {"count": n_workers, "per_worker": {str(k): v for k, v in sorted(collector.worker_stats.items())}},
        "output": {"directory": output_dir, "files": sorted(f"{s}.tsrec" for s in collector.writers)},
        "wall_s": wall_s,
    }
