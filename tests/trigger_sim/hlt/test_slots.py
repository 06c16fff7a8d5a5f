"""Tests of trigger_sim.hlt.slots: a worker's event slots, driven without sockets.

A discrete-event simulation stands for the worker's shell: events are generators that spend
virtual CPU time and yield requests a fake server answers after a virtual delay, in any order.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Generator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.hlt.slots import Finished, Parked, SlotScheduler


class VirtualClock:
    def __init__(self) -> None:
        self.t = 0


@dataclass
class Request:
    """What a fake event waits for: answered at `answer_at` with `value`."""

    answer_at: int
    value: int


def fake_event(l1_id: int, clock: VirtualClock, cpu: list[int], server: list[int]) -> Generator[Request, None, tuple]:
    """CPU segments with a request between each two; the decision depends on the answers."""
    answers = []
    for i, work in enumerate(cpu):
        clock.t += work
        if i < len(server):
            request = Request(clock.t + server[i], zlib.crc32(f"{l1_id}:{i}".encode()))
            yield request
            assert clock.t >= request.answer_at, "resumed before its answer was in"
            answers.append(request.value)
    return l1_id, tuple(answers)


@dataclass
class Run:
    results: list
    makespan: int
    peak_held: int
    resumed_after_answer: int


def simulate(events: list[tuple[int, list[int], list[int]]], n_slots: int) -> Run:
    """The worker's loop over virtual time: admit while a slot is free, run the oldest ready
    event, and when none can run, wait for the next answer."""
    clock = VirtualClock()
    sched = SlotScheduler(n_slots)
    todo = list(events)
    answers: list[tuple[int, int, int]] = []  # (answer time, order, token)
    results, peak, resumed, order = [], 0, 0, 0
    answered_tokens: set[int] = set()
    while todo or sched.held:
        while sched.free and todo:
            l1_id, cpu, server = todo.pop(0)
            sched.admit(l1_id, fake_event(l1_id, clock, cpu, server))
        peak = max(peak, sched.held)
        assert sched.held <= n_slots
        while answers and answers[0][0] <= clock.t:
            _, _, token = heapq.heappop(answers)
            assert sched.answered(token)
            answered_tokens.add(token)
        token = sched.next_ready()
        if token is None:
            t, _, token = heapq.heappop(answers)
            clock.t = max(clock.t, t)  # the CPU idles until the next answer
            assert sched.answered(token)
            answered_tokens.add(token)
            continue
        if token in answered_tokens:
            resumed += 1
            answered_tokens.discard(token)
        step = sched.resume(token)
        if isinstance(step, Parked):
            order += 1
            heapq.heappush(answers, (step.wait.answer_at, order, step.token))
        else:
            assert isinstance(step, Finished)
            results.append(step.result)
    return Run(results, clock.t, peak, resumed)


def one_by_one(events: list[tuple[int, list[int], list[int]]]) -> list:
    clock = VirtualClock()
    out = []
    for l1_id, cpu, server in events:
        run = fake_event(l1_id, clock, cpu, server)
        try:
            while True:
                request = next(run)
                clock.t = max(clock.t, request.answer_at)
        except StopIteration as stop:
            out.append(stop.value)
    return out


event_shapes = st.lists(
    st.tuples(st.lists(st.integers(0, 50), min_size=1, max_size=4), st.lists(st.integers(0, 200), max_size=3)),
    min_size=1, max_size=25)


def as_events(shapes) -> list[tuple[int, list[int], list[int]]]:
    return [(l1_id, cpu, server[: len(cpu) - 1]) for l1_id, (cpu, server) in enumerate(shapes)]


@settings(max_examples=300, deadline=None)
@given(event_shapes, st.integers(1, 8))
def test_every_event_finishes_once_within_its_slots_and_decides_as_one_by_one(shapes, n_slots):
    events = as_events(shapes)
    run = simulate(events, n_slots)
    assert sorted(r[0] for r in run.results) == [e[0] for e in events]  # each started event finished exactly once
    assert run.peak_held <= n_slots
    assert sorted(run.results) == sorted(one_by_one(events))  # the same decisions, whatever the order
    n_requests = sum(len(server) for _, _, server in events)
    assert run.resumed_after_answer == n_requests  # every answered event was resumed


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 40), st.integers(1, 20), st.integers(0, 200), st.integers(1, 8), st.integers(1, 30))
def test_slots_overlap_the_server_with_other_events_cpu(cpu_before, cpu_after, server, n_slots, n_events):
    """Fixed times per event: CPU, a request of `server`, CPU. With N slots the run takes no
    longer than the ideal, min(N / (cpu + server), 1 / cpu) events per unit, allows, plus one
    event's latency (the pipeline filling)."""
    cpu = cpu_before + cpu_after
    events = [(i, [cpu_before, cpu_after], [server]) for i in range(n_events)]
    run = simulate(events, n_slots)
    period = max(cpu, (cpu + server) / n_slots)  # time per event at the ideal rate
    assert run.makespan <= n_events * period + cpu + server
    assert run.makespan >= n_events * cpu  # never faster than the CPU work
    if n_slots == 1:
        assert run.makespan == n_events * (cpu + server)  # one slot: no overlap at all


def test_least_run_then_oldest_event_runs_first_and_a_waiting_one_cannot_run():
    clock = VirtualClock()
    sched = SlotScheduler(2)
    a = sched.admit(10, fake_event(10, clock, [1, 1], [5]))
    b = sched.admit(11, fake_event(11, clock, [1, 1], [5]))
    assert sched.free == 0 and sched.l1_ids() == [10, 11]
    with pytest.raises(ValueError, match="no free slot"):
        sched.admit(12, fake_event(12, clock, [1], []))
    assert sched.next_ready() == a
    assert isinstance(sched.resume(a), Parked)
    with pytest.raises(ValueError, match="waiting"):
        sched.resume(a)
    assert sched.next_ready() == b
    assert isinstance(sched.resume(b), Parked)
    assert sched.next_ready() is None and sched.waiting() == 2
    assert sched.answered(b) and not sched.answered(b)  # a second report changes nothing
    assert sched.next_ready() == b
    clock.t += 10
    assert sched.answered(a)
    assert sched.next_ready() == a  # the older one, now that both can run
    done = sched.resume(a)
    assert isinstance(done, Finished) and done.l1_id == 10 and sched.free == 1
    c = sched.admit(12, fake_event(12, clock, [1, 1], [5]))
    assert sched.next_ready() == c  # a new event sends its request before b resumes
    sched.resume(c)
    assert sched.next_ready() == b


def test_an_event_that_raises_frees_its_slot_and_drop_all_closes_the_rest():
    def broken():
        raise RuntimeError("bug")
        yield  # pragma: no cover

    closed = []

    def held():
        try:
            yield Request(0, 0)
        finally:
            closed.append(True)

    sched = SlotScheduler(2)
    bad = sched.admit(1, broken())
    with pytest.raises(RuntimeError):
        sched.resume(bad)
    assert sched.free == 2
    sched.resume(sched.admit(2, held()))
    assert sched.drop_all() == [2] and closed == [True] and sched.held == 0


def test_needs_a_slot():
    with pytest.raises(ValueError, match="at least one"):
        SlotScheduler(0)
