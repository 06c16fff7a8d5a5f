#!/usr/bin/env python3
"""When does a restarted server get calls again? A worker's pool of two local servers (jet
tagger), calls at 50 Hz; server A is SIGKILLed, started again on its ports DELAY seconds
later, and the time it answers a call again is measured from the kill.

The pool sends A no calls while its breaker is open (`inference.breaker_open_ms`, probes
after it), and gRPC's channel to A, lost at the kill, connects again only at its own
attempts (gRPC's connection backoff: 1 s, then x1.6 each, +-20 % jitter), so A rejoins at
the first breaker probe after the first attempt after it is up, not when it is ready. The
last column is that attempt without jitter (`trigger_sim.planning.channels`, as the capacity
model has it). `--reconnect-backoff-ms` sets the farm's `inference.reconnect_backoff_ms`.
It takes the shared lock (/tmp/tsim-heavy.lock) itself: do not run it under `flock`.

    .venv/bin/python scripts/rejoin_after_restart.py --delays 0.3,1.3,2.3,3.3,4.5,5.5
    .venv/bin/python scripts/rejoin_after_restart.py --reconnect-backoff-ms 100
"""

from __future__ import annotations

import argparse
import fcntl
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cases.failover_case import start_two, tagger_repository  # noqa: E402
from trigger_sim import clock  # noqa: E402
from trigger_sim.config import FarmConfig, with_overrides  # noqa: E402
from trigger_sim.inference.factory import build_inference, close_inference, prepare_inference  # noqa: E402
from trigger_sim.planning.channels import Channel, client_backoff  # noqa: E402

LOCK = "/tmp/tsim-heavy.lock"
CALL_PERIOD_S = 0.02
BUDGET_NS = 500_000_000
GIVE_UP_S = 30.0


def first_attempt_after_s(up_s: float, reconnect_backoff_ms: float = 0.0) -> float:
    """gRPC's first connection attempt at or after `up_s` (s after the loss), without jitter:
    its own backoff, or a fixed one of `reconnect_backoff_ms` > 0."""
    channel = Channel(replace(client_backoff(reconnect_backoff_ms), jitter=0.0), np.random.default_rng(0))
    channel.lost(0.0)
    now_ms = 0.0
    while not channel.usable(now_ms, up_s * 1e3):
        now_ms = channel.next_attempt_ms
    return channel.reconnected_ms[0] / 1e3


def measure(delays_s: list[float], breaker_open_ms: float, reconnect_backoff_ms: float = 0.0) -> list[dict]:
    """For each delay: when A was ready again and when it answered a call again (s after its kill)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="tsim-rejoin-") as tmp:
        a, b = start_two(tagger_repository(Path(tmp)))
        config = with_overrides(FarmConfig(), inference={"servers": (a.grpc_url, b.grpc_url), "models": ("jet_tagger",),
                                                         "breaker_open_ms": breaker_open_ms, "shared_memory": "off",
                                                         "reconnect_backoff_ms": reconnect_backoff_ms})
        services = build_inference(config, [a.grpc_url, b.grpc_url])
        try:
            problem = prepare_inference(services)
            if problem:
                raise SystemExit(f"the pool did not start: {problem}")
            service = services["jet_tagger"]
            pool = service.remote.pool
            x = np.random.default_rng(1).normal(size=(8, 9)).astype(np.float32)

            def answered_by_a() -> int:
                c = pool.counters()[a.grpc_url]
                return c["calls"] - c["failures"]

            for delay in delays_s:
                for _ in range(50):  # a second of calls: both servers in use
                    service.infer(x, clock.now_ns() + BUDGET_NS)
                    time.sleep(CALL_PERIOD_S)
                before = answered_by_a()
                a.proc.kill()
                killed = time.monotonic()
                ready_s = rejoin_s = None
                while time.monotonic() - killed < GIVE_UP_S and rejoin_s is None:
                    if ready_s is None and time.monotonic() - killed >= delay:
                        a.restart()  # returns once A is ready
                        ready_s = time.monotonic() - killed
                    service.infer(x, clock.now_ns() + BUDGET_NS)
                    if answered_by_a() > before:
                        rejoin_s = time.monotonic() - killed
                    time.sleep(CALL_PERIOD_S)
                rows.append({"delay_s": delay, "ready_s": ready_s, "rejoin_s": rejoin_s,
                             "grpc_attempt_s": first_attempt_after_s(ready_s, reconnect_backoff_ms) if ready_s is not None else None})
                if ready_s is None:
                    print(f"  restart begun {delay:4.1f} s after the kill: not started within {GIVE_UP_S:g} s", flush=True)
                    continue
                print(f"  restart begun {delay:4.1f} s after the kill: ready at {ready_s:5.2f} s, answered again at "
                      + (f"{rejoin_s:5.2f} s ({rejoin_s - ready_s:4.2f} s after ready)" if rejoin_s else "never")
                      + f"; gRPC's first attempt after ready (no jitter) {rows[-1]['grpc_attempt_s']:5.2f} s", flush=True)
        finally:
            close_inference(services)
            a.stop()
            b.stop()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--delays", default="0.3,0.8,1.3,1.8,2.3,2.8,3.3,3.8,4.5,5.5",
                    help="seconds from the kill to the restart's start, comma-separated")
    ap.add_argument("--breaker-open-ms", type=float, default=FarmConfig().inference.breaker_open_ms)
    ap.add_argument("--reconnect-backoff-ms", type=float, default=FarmConfig().inference.reconnect_backoff_ms,
                    help="the clients' inference.reconnect_backoff_ms (0: gRPC's own backoff)")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    delays = [float(d) for d in args.delays.split(",")]
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # alone on the host's cores, as every measurement here
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, breaker open {args.breaker_open_ms:g} ms, "
              f"reconnect backoff {args.reconnect_backoff_ms:g} ms (0: gRPC's own)", flush=True)
        rows = measure(delays, args.breaker_open_ms, args.reconnect_backoff_ms)
    if args.json:
        Path(args.json).write_text(json.dumps({"breaker_open_ms": args.breaker_open_ms,
                                               "reconnect_backoff_ms": args.reconnect_backoff_ms, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
