"""The model against queueing theory, its bookkeeping, and its mechanisms one at a time."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_sim.planning.arrivals import farm_arrival_times_s
from trigger_sim.planning.calibration import MODELS, ModelCurve
from trigger_sim.planning.farm_model import PENDING, FarmModel
from trigger_sim.planning.model_summary import simulate, summarise
from trigger_sim.planning.spec import ArrivalSpec, FarmSpec, PlanSpec, ServerKill

from .synthetic import calibration


def test_one_worker_without_inference_is_an_md1_queue():
    """Poisson arrivals, one worker, 10 ms of CPU per event: M/D/1, mean wait rho D / (2 (1 - rho))."""
    cal = calibration(cpu_ms=10.0, called=False)
    rate = 70.0  # rho = 0.7
    spec = PlanSpec(ArrivalSpec(rate_hz=rate), FarmSpec(workers_per_node=1, readout_buffer_events=10_000, budget_ms=1e6),
                    events=40_000, seed=3)
    model = FarmModel(spec, cal)
    model.run()
    rho, d_ms = rate * 10e-3, 10.0
    # the wait: in the readout for a node slot, then in the node for the worker
    assert (model.assign_ms + model.queue_ms).mean() == pytest.approx(rho * d_ms / (2 * (1 - rho)), rel=0.06)
    # Little's law: events in the system on average = rate x mean time in it
    total_ms = model.decided_ms - model.t_l1_ms
    horizon = np.linspace(model.t_l1_ms[0], model.t_l1_ms[-1], 20_000)
    in_system = (np.searchsorted(np.sort(model.t_l1_ms), horizon) - np.searchsorted(np.sort(model.decided_ms), horizon)).mean()
    assert in_system == pytest.approx(rate * total_ms.mean() / 1e3, rel=0.05)


def test_a_node_takes_only_its_slots_and_an_accept_waits_for_one_in_the_readout():
    """Two nodes of two one-slot workers, one event waiting per worker: each node holds at
    most 2 x (1 + 1) = 4 undecided events; the rest wait in the readout (`assign`); a
    worker runs only events built on its own node, and only complete ones (queue >= 0 from
    the end of the build); the nodes take turns."""
    cal = calibration(cpu_ms=10.0, called=False, build_ms=3.0)
    farm = FarmSpec(nodes=2, workers_per_node=2, node_waiting_per_worker=1, readout_buffer_events=10_000, budget_ms=1e6)
    model = FarmModel(PlanSpec(ArrivalSpec(rate_hz=2_000.0, pattern="constant"), farm, events=400, seed=1), cal)
    model.run()
    assert model.pending == 0
    node = model.worker_of // 2
    assigned = model.t_l1_ms + model.assign_ms
    assert np.array_equal(model.node_of, node), "a worker ran an event assigned to another node"
    first = model.node_of[np.argsort(model.t_l1_ms + model.assign_ms, kind="stable")][:8]
    assert list(first) == [0, 1] * 4, "the nodes' first slots are handed out in turn"
    for n in (0, 1):
        mine = node == n
        times = np.concatenate([model.decided_ms[mine], assigned[mine]])
        steps = np.concatenate([np.full(np.count_nonzero(mine), -1), np.full(np.count_nonzero(mine), 1)])
        order = np.lexsort((steps, times))  # at one instant the decision frees the slot first
        assert np.cumsum(steps[order]).max() == 4
        assert np.count_nonzero(mine) == 200  # turns: both nodes as busy
    assert np.nanmax(model.assign_ms) > 100  # 2 kHz into 4 workers of 100 Hz: the readout's buffer fills
    assert np.nanmax(model.queue_ms) > 0  # built events waited at their node for a worker
    assert np.all(model.t_l1_ms + model.assign_ms + 3.0 <= model.decided_ms - 10.0 + 1e-9)  # built before its worker ran


def test_the_watchdogs_forced_decision_frees_the_node_slot_at_the_hard_budget():
    """A node of one one-slot worker and no waiting slot (1 node slot), 100 ms events, a 30 ms
    budget: the first event is force-decided at 30 ms and the second accept gets the node slot
    then (as the real assignment service, on the forced result), though the worker stays busy
    with the first until its step ends and takes the second only then."""
    cal = calibration(cpu_ms=100.0, called=False)
    farm = FarmSpec(workers_per_node=1, node_waiting_per_worker=0, readout_buffer_events=10, budget_ms=30.0)
    model = FarmModel(PlanSpec(ArrivalSpec(rate_hz=1000.0, pattern="constant"), farm, events=3, seed=1), cal)
    model.run()
    assert model.pending == 0 and model.decided_ms[0] == pytest.approx(30.0)
    assert model.t_l1_ms[1] + model.assign_ms[1] == pytest.approx(30.0)
    assert model.worker_ms[0] > 30.0  # the worker ran the first event's step past its forced decision
    assert model.queue_ms[1] == pytest.approx(model.worker_ms[0] - 30.0)  # the second waited at the node for it


def test_a_full_readout_buffer_of_waiting_accepts_is_level1_busy():
    """One one-slot worker (node slots 2) and a readout holding 3 waiting accepts: at a rate
    far above the worker's, a burst of accepts beyond 2 + 3 is vetoed, and lost stays 0."""
    cal = calibration(cpu_ms=10.0, called=False)
    farm = FarmSpec(workers_per_node=1, readout_buffer_events=3, budget_ms=1e6)
    model = FarmModel(PlanSpec(ArrivalSpec(rate_hz=100_000.0, pattern="constant"), farm, events=50, seed=1), cal)
    model.run()
    s = summarise(model)
    assert s["events"]["l1_accepted"] == 5 and s["level1"]["vetoed_busy"] == 45 and s["events"]["lost"] == 0


def test_the_credit_round_trip_keeps_a_slot_idle_between_events():
    """A saturated one-slot worker with 10 ms of CPU per event and a 2 ms credit round trip
    decides one event per 12 ms; the first event is not delayed (its slot was already waiting)."""
    cal = calibration(cpu_ms=10.0, called=False, host={"dispatch_ms": 2.0})
    spec = PlanSpec(ArrivalSpec(rate_hz=10_000.0, pattern="constant"),
                    FarmSpec(workers_per_node=1, readout_buffer_events=10_000, budget_ms=1e6), events=200, seed=1)
    model = FarmModel(spec, cal)
    model.run()
    decided = np.sort(model.decided_ms)
    assert np.diff(decided) == pytest.approx(np.full(199, 12.0))
    assert decided[0] == pytest.approx(10.0)
    assert np.nanmax(model.worker_ms) == pytest.approx(10.0)  # the round trip is not the worker's step time


def test_the_workers_cpu_outside_its_steps_takes_its_own_core_without_a_shared_host():
    """Workers on their own cores (no host_cores): a saturated worker with 4 slots, 3 ms of
    timed CPU steps and 2 ms of CPU outside them per event decides one event per 5 ms, not 3;
    the outside CPU is not the event's latency. With host_cores it counts with the farm's
    overhead on the shared cores instead, not twice."""
    host = {"worker_outside_cpu_ms_per_event": 2.0, "overhead_cpu_ms_per_event": 2.0}
    cal = calibration(cpu_ms=3.0, called=False, host=host)
    farm = FarmSpec(workers_per_node=1, slots_per_worker=4, readout_buffer_events=10_000, budget_ms=1e6)
    spec = PlanSpec(ArrivalSpec(rate_hz=10_000.0, pattern="constant"), farm, events=200, seed=1)
    model = FarmModel(spec, cal)
    model.run()
    decided = np.sort(model.decided_ms)
    assert (decided[-1] - decided[9]) / 190 == pytest.approx(5.0, rel=0.02)  # the core's 5 ms per event, once running
    one_slot = FarmModel(replace(spec, farm=replace(farm, slots_per_worker=1)), cal)
    one_slot.run()
    assert np.diff(np.sort(one_slot.decided_ms)) == pytest.approx(np.full(199, 5.0))
    assert np.nanmax(one_slot.worker_ms) == pytest.approx(3.0)  # not the event's time in the worker
    shared = FarmModel(replace(spec, farm=replace(farm, host_cores=1)), cal)
    shared.run()
    assert shared.outside_ms == 0.0 and shared.overhead_ms == 2.0


def test_server_utilisation_and_queueing_match_md1():
    """Many workers, one server instance of 5 ms per request: the server is the M/D/1 queue."""
    cal = calibration(cpu_ms=0.0, demand_ms={"edge_classifier": 5.0, "jet_tagger": 0.0})
    rate = 120.0  # rho = 0.6
    spec = PlanSpec(ArrivalSpec(rate_hz=rate), FarmSpec(workers_per_node=64, timeout_ms=1e5, budget_ms=1e6), events=30_000, seed=5)
    model = FarmModel(spec, cal)
    model.run()
    s = summarise(model)
    util = s["model"]["servers"][0]["models"]["edge_classifier"]["utilisation"]
    assert util == pytest.approx(0.6, rel=0.03)
    wait = model.call_ms["edge_classifier"] - 5.0
    assert np.nanmean(wait) == pytest.approx(0.6 * 5.0 / (2 * 0.4), rel=0.08)


def test_dynamic_batching_saves_the_fixed_cost():
    curve = ModelCurve(instances=1, max_batch=8, queue_delay_ms=1.0, fixed_ms=2.0, per_request_ms=0.1)
    cal = calibration(cpu_ms=0.0, demand_ms={"edge_classifier": 0.0, "jet_tagger": 1.0},
                      curves={"edge_classifier": curve, "jet_tagger": curve})
    spec = PlanSpec(ArrivalSpec(rate_hz=1500.0), FarmSpec(workers_per_node=64, timeout_ms=1e4), events=6000, seed=2)
    s = simulate(spec, cal)
    jt = s["model"]["servers"][0]["models"]["jet_tagger"]
    assert jt["mean_batch"] > 2  # 1,500 requests/s cannot be served one at a time at 2.1 ms each
    assert s["events"]["lost"] == 0 and s["events"]["debug"] == 0


def test_a_killed_server_fails_over_and_its_breakers_open():
    cal = calibration(cpu_ms=1.0, demand_ms={"edge_classifier": 3.0, "jet_tagger": 1.0})
    farm = FarmSpec(workers_per_node=8, servers=2, kills=(ServerKill(server=0, at_s=1.0, restart_s=1.0),))
    s = simulate(PlanSpec(ArrivalSpec(rate_hz=200.0), farm, events=800, seed=4), cal)
    assert s["model"]["failovers"] > 0 and s["inference"]["breaker_opened"] > 0
    assert s["model"]["servers"][0]["failed_requests"] > 0
    assert s["events"]["lost"] == 0


def test_a_server_slower_than_the_deadline_sends_every_event_to_the_fallback():
    cal = calibration(cpu_ms=1.0, demand_ms={"edge_classifier": 50.0, "jet_tagger": 0.0})
    s = simulate(PlanSpec(ArrivalSpec(rate_hz=10.0), FarmSpec(workers_per_node=2, timeout_ms=20.0), events=200, seed=1), cal)
    assert s["model"]["fallback_fraction"] == 1.0
    assert s["inference"]["fallback_reasons"].get("timeout", 0) + s["inference"]["fallback_reasons"].get("breaker_open", 0) == 200
    # the fallback's CPU (50 ms) runs on the worker after the 20 ms deadline (or at once when the breaker is open)
    assert s["latency_ms"]["edge_classifier"]["p50"] >= 50.0


def test_overload_vetoes_level1_slots_as_dead_time():
    cal = calibration(cpu_ms=10.0, called=False)
    s = simulate(PlanSpec(ArrivalSpec(rate_hz=1000.0), FarmSpec(workers_per_node=1, readout_buffer_events=8), events=2000), cal)
    assert s["level1"]["deadtime_fraction"] > 0.8
    assert s["events"]["l1_accepted"] + s["level1"]["vetoed_busy"] == 2000


def test_the_hard_budget_force_accepts_slow_events_into_hlttimeout():
    """1,400 ms of CPU, 800 of them before the first model call: the watchdog decides at 500 ms,
    the worker stays busy until its step ends (800 ms), then the soft timeout stops the event."""
    cal = calibration(cpu_ms=1400.0, called=False)
    spec = PlanSpec(ArrivalSpec(rate_hz=0.5, pattern="constant"), FarmSpec(workers_per_node=1, budget_ms=500.0), events=5)
    model = FarmModel(spec, cal)
    model.run()
    s = summarise(model)
    assert s["debug_streams"] == {"HltTimeout": 5}
    assert s["latency_ms"]["worker_total"]["p50"] == pytest.approx(800.0)
    assert np.allclose(model.decided_ms - model.t_l1_ms, 500.0)


def test_same_seed_same_result_other_seed_other_result():
    cal = calibration(cpu_ms=5.0, spread=0.5, demand_ms={"edge_classifier": 3.0, "jet_tagger": 1.0})
    spec = PlanSpec(ArrivalSpec(rate_hz=300.0), FarmSpec(workers_per_node=4, slots_per_worker=2), events=2000, seed=11)
    a, b = simulate(spec, cal), simulate(spec, cal)
    a.pop("wall_s"), b.pop("wall_s")
    assert a == b
    c = simulate(replace(spec, seed=12), cal)
    assert c["latency_ms"]["total"] != a["latency_ms"]["total"]


def test_a_kill_after_n_decisions_comes_with_the_nth_decision_not_before_at_s():
    """after_decided: the server dies when the n-th event is decided (the farm's fault
    scenario kills after its 240th decision), or at at_s if that is later."""
    cal = calibration(cpu_ms=5.0, spread=0.5, demand_ms={"edge_classifier": 3.0, "jet_tagger": 1.0})
    for at_s, n in ((0.0, 60), (2.0, 60)):
        farm = FarmSpec(workers_per_node=2, servers=2, kills=(ServerKill(server=0, at_s=at_s, after_decided=n),))
        model = FarmModel(PlanSpec(ArrivalSpec(rate_hz=50.0, seed=3), farm, events=200, seed=1), cal)
        killed_at = []
        kill = model.servers[0].kill
        model.servers[0].kill = lambda: (killed_at.append(model.env.now), kill())[1]
        model.run()
        nth = np.sort(model.decided_ms)[n - 1]
        assert killed_at == [max(nth, at_s * 1e3)]
        assert model.decided == 200


def test_arrivals_with_a_seed_replay_a_real_run_and_the_plans_seed_varies_only_the_rest():
    """arrivals.seed pairs a model run with a real run: its Level-1 times are the readout's
    own for that run.seed, whatever the plan's seed; the plan's seed still draws the events."""
    cal = calibration(cpu_ms=5.0, spread=0.5, demand_ms={"edge_classifier": 3.0, "jet_tagger": 1.0})
    spec = PlanSpec(ArrivalSpec(rate_hz=300.0, seed=2), FarmSpec(workers_per_node=4), events=500, seed=11)
    a, b = FarmModel(spec, cal), FarmModel(replace(spec, seed=12), cal)
    expected = farm_arrival_times_s(ArrivalSpec(rate_hz=300.0), 500, 2) * 1e3
    assert np.array_equal(a.t_l1_ms, expected) and np.array_equal(b.t_l1_ms, expected)
    a.run(), b.run()
    assert not np.array_equal(a.decided_ms, b.decided_ms)
    unpaired = FarmModel(replace(spec, arrivals=ArrivalSpec(rate_hz=300.0)), cal)
    assert not np.array_equal(unpaired.t_l1_ms, expected)

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rate=st.floats(10, 5000), workers=st.integers(1, 6), slots=st.integers(1, 4), servers=st.integers(1, 3),
       buffer=st.integers(1, 20), timeout_ms=st.floats(1, 50), budget_ms=st.floats(5, 200),
       demand=st.floats(0.1, 30), cpu=st.floats(0.0, 20), pattern=st.sampled_from(["constant", "poisson", "burst"]),
       kill_at=st.none() | st.floats(0.0, 0.5), host_cores=st.integers(0, 3), seed=st.integers(0, 2**31),
       dispatch_ms=st.sampled_from([0.0, 0.7, 5.0]), contended=st.booleans())
def test_every_level1_slot_ends_in_exactly_one_place(rate, workers, slots, servers, buffer, timeout_ms, budget_ms, demand,
                                                     cpu, pattern, kill_at, host_cores, seed, dispatch_ms, contended):
    cal = calibration(cpu_ms=cpu, spread=0.9, demand_ms={"edge_classifier": demand, "jet_tagger": demand / 3},
                      host={"overhead_cpu_ms_per_event": 0.5, "dispatch_ms": dispatch_ms})
    kill = ServerKill(server=0, at_s=kill_at or 0.0, restart_s=0.2)
    if contended and host_cores:  # its restart's CPU taken by two processes beside the farm's
        kill = replace(kill, restart_cpu_s=0.3, restart_processes=2)
    kills = (kill,) if kill_at is not None else ()
    farm = FarmSpec(workers_per_node=workers, slots_per_worker=slots, servers=servers, readout_buffer_events=buffer,
                    timeout_ms=timeout_ms, budget_ms=budget_ms, breaker_failures=2, breaker_open_ms=20.0, kills=kills,
                    host_cores=host_cores)
    model = FarmModel(PlanSpec(ArrivalSpec(rate_hz=rate, pattern=pattern), farm, events=300, seed=seed), cal)
    model.run()
    assert model.pending == 0 and not np.any(model.outcome == PENDING)
    s = summarise(model)
    ev = s["events"]
    assert ev["lost"] == 0
    assert ev["accepted"] + ev["rejected"] + ev["debug"] == ev["l1_accepted"]
    assert ev["l1_accepted"] + s["level1"]["vetoed_busy"] == 300
    decided = ~np.isnan(model.decided_ms)
    assert decided.sum() == ev["l1_accepted"]
    assert np.all(model.decided_ms[decided] >= model.t_l1_ms[decided])
    for m in MODELS:  # every call ended on one path
        assert s["inference"]["models"][m]["triton_calls"] + s["inference"]["models"][m]["fallback_calls"] + \
            s["inference"]["models"][m]["expired"] <= ev["l1_accepted"]


def test_a_restarted_server_gets_calls_again_only_once_a_channel_reconnected():
    """Server 0 dies at 1 s and is back 3 s later. With gRPC's backoff (no jitter: attempts
    1, 2.6 and 5.16 s after a worker first saw it gone) no call reaches it before its
    worker's channel connected again, about 5.2 s after the kill; without backoff its
    workers are back within a breaker period of the restart."""
    cal = calibration(cpu_ms=1.0, demand_ms={"edge_classifier": 3.0, "jet_tagger": 1.0})
    kills = (ServerKill(server=0, at_s=1.0, restart_s=3.0),)
    slow = FarmSpec(workers_per_node=4, servers=2, kills=kills, reconnect_jitter=0.0)
    model, served_after = calls_to_server_0_after_1_s(slow, cal)
    s = summarise(model)
    first, last = s["model"]["servers"][0]["reconnected_s"]
    assert 1.0 + 5.16 <= first <= last <= 1.0 + 5.16 + 0.05  # each worker saw it gone within ms of the kill
    assert served_after and min(served_after) >= first * 1e3
    assert s["model"]["unreachable_calls"] > 0 and s["events"]["lost"] == 0
    quick_model, quick_served = calls_to_server_0_after_1_s(replace(slow, reconnect_backoff_ms=0.0), cal)
    quick = summarise(quick_model)
    assert quick["model"]["servers"][0]["reconnected_s"] == [] and quick["model"]["unreachable_calls"] == 0
    # back within a breaker period (1 s) of the restart at 4 s, each worker at its next probe
    assert 4000.0 <= min(quick_served) <= 4000.0 + slow.breaker_open_ms + 50.0


def calls_to_server_0_after_1_s(farm: FarmSpec, cal) -> tuple[FarmModel, list[float]]:
    """Run the model at 100 Hz, noting when server 0 (alive) was sent a call after 1 s."""
    model = FarmModel(PlanSpec(ArrivalSpec(rate_hz=100.0), farm, events=1200, seed=4), cal)
    served: list[float] = []
    submit = model.servers[0].submit

    def record(name, req):
        if model.servers[0].alive and model.env.now > 1000.0:
            served.append(model.env.now)
        submit(name, req)

    model.servers[0].submit = record
    model.run()
    return model, served
