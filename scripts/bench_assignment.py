"""CPU per event of the central assignment service, with 1, 2 and 4 nodes of emulated workers.

    flock /tmp/tsim-heavy.lock .venv/bin/python scripts/bench_assignment.py [--events N] [--repetitions R]

Each run pushes N Level-1 accepts through `AssignmentService` as run control does: accept,
pair with free slots, and the outcome of the oldest event a node holds coming back (its
slot free again). Emulated nodes have 8 slots each; no sockets, so the figure is the
service's own cost (the process CPU time, `time.process_time_ns`). The target: at most
20 us per event (one core carries a 50 kHz Level-1 rate), and flat in the number of nodes.
Prints medians with min and max over the repetitions, after one warm-up run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trigger_sim.assignment import AssignmentService  # noqa: E402

SLOTS_PER_NODE = 8
TARGET_US = 20.0


def one_run(n_nodes: int, n_events: int) -> float:
    """CPU microseconds per event for `n_events` accepts over `n_nodes` nodes."""
    svc = AssignmentService(max_waiting=1024)
    names = [f"node{i}" for i in range(n_nodes)]
    for name in names:
        svc.join(name, SLOTS_PER_NODE)
    held = deque()  # (l1_id, node) in assignment order: the oldest finishes first
    capacity = n_nodes * SLOTS_PER_NODE
    t0 = time.process_time_ns()
    for l1_id in range(n_events):
        svc.accept(l1_id)
        for a in svc.assignments():
            held.append((a.l1_id, a.node))
        if len(held) >= capacity:  # every slot busy: one event finishes
            done_id, node = held.popleft()
            svc.done(done_id, node)
    while held:
        done_id, node = held.popleft()
        svc.done(done_id, node)
        for a in svc.assignments():
            held.append((a.l1_id, a.node))
    elapsed = time.process_time_ns() - t0
    assert svc.n_waiting == 0 and svc.n_in_flight == 0
    assert sum(svc.assigned_per_node.values()) == n_events
    return elapsed / n_events / 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args(argv)
    one_run(4, 20_000)  # warm-up
    print(f"assignment service: CPU per event, {args.events} events, {args.repetitions} runs, {SLOTS_PER_NODE} slots per node")
    medians = {}
    for n_nodes in (1, 2, 4):
        runs = [one_run(n_nodes, args.events) for _ in range(args.repetitions)]
        medians[n_nodes] = statistics.median(runs)
        print(f"  {n_nodes} node(s): median {medians[n_nodes]:.2f} us (min {min(runs):.2f}, max {max(runs):.2f})")
    worst = max(medians.values())
    print(f"  target <= {TARGET_US:g} us: {'met' if worst <= TARGET_US else 'NOT met'}; "
          f"4 nodes / 1 node = {medians[4] / medians[1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
