"""Case i: CPU per event of the central assignment service, with 1, 2 and 4 nodes.

Each run pushes N Level-1 accepts through `trigger_sim.assignment.AssignmentService` as run
control does: accept, pair with free slots, and the outcome of the oldest event a node holds
coming back (its slot free again). Emulated nodes have 8 slots each; no sockets, so the
figure is the service's own cost (this process's CPU time). Targets: at most 20 µs per event
(one core then carries a 50 kHz Level-1 rate) at every node count, and flat in the number of
nodes (4 nodes / 1 node, judged at most 1.5). The node counts alternate, run after run, after
one warm-up run.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from bench_cases.common import CaseResult, Target, fmt, log, stats
from trigger_sim.assignment import AssignmentService

SLOTS_PER_NODE = 8
NODE_COUNTS = (1, 2, 4)
TARGET_US = 20.0
FLAT_RATIO = 1.5  # 4 nodes / 1 node: "does not grow with the number of nodes", with room for noise


@dataclass(frozen=True)
class Settings:
    events: int
    repetitions: int


def one_run(n_nodes: int, n_events: int) -> float:
    """CPU microseconds per event for `n_events` accepts over `n_nodes` nodes."""
    svc = AssignmentService(max_waiting=1024)
    names = [f"node{i}" for i in range(n_nodes)]
    for name in names:
        svc.join(name, SLOTS_PER_NODE)
    held: deque = deque()  # (l1_id, node) in assignment order: the oldest finishes first
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
    if svc.n_waiting or svc.n_in_flight or sum(svc.assigned_per_node.values()) != n_events:
        raise RuntimeError(f"assignment run with {n_nodes} nodes did not assign and finish every event once")
    return elapsed / n_events / 1e3


def run(settings: Settings) -> CaseResult:
    one_run(max(NODE_COUNTS), max(settings.events // 10, 1000))  # warm-up
    samples: dict[int, list[float]] = {n: [] for n in NODE_COUNTS}
    for rep in range(settings.repetitions):
        for n in NODE_COUNTS:
            samples[n].append(one_run(n, settings.events))
        log(f"  assignment rep {rep + 1}: " + ", ".join(f"{n} node(s) {samples[n][-1]:.2f} µs" for n in NODE_COUNTS))
    res = CaseResult("assignment", "i) Central assignment service: CPU per event, 1, 2 and 4 nodes")
    m = res.metrics
    for n in NODE_COUNTS:
        m[f"cpu_us_per_event_{n}_nodes"] = stats(samples[n], "µs")
    ratios = [four / one for four, one in zip(samples[max(NODE_COUNTS)], samples[min(NODE_COUNTS)])]
    m["ratio_4_to_1_nodes"] = stats(ratios, "4 nodes / 1 node")
    worst = max(m[f"cpu_us_per_event_{n}_nodes"]["median"] for n in NODE_COUNTS)
    res.targets.append(Target("assignment service CPU per event, worst of 1/2/4 nodes (µs)", worst, "<=", TARGET_US))
    res.targets.append(Target("assignment service CPU per event, 4 nodes / 1 node", m["ratio_4_to_1_nodes"]["median"],
                              "<=", FLAT_RATIO))
    res.tables.append((["nodes", "CPU per event (µs)", "Level-1 rate one core carries (kHz)"],
                       [[str(n), fmt(m[f"cpu_us_per_event_{n}_nodes"]),
                         f"{1e3 / m[f'cpu_us_per_event_{n}_nodes']['median']:,.0f}"] for n in NODE_COUNTS]
                       + [["4 / 1 (per repetition)", fmt(m["ratio_4_to_1_nodes"]), ""]]))
    res.notes.append(f"{settings.events:,} Level-1 accepts per run, {SLOTS_PER_NODE} slots per node, "
                     f"{settings.repetitions} repetitions of 1, 2 and 4 nodes in turn after one warm-up run; "
                     f"the service alone (no sockets), this process's CPU time.")
    return res
