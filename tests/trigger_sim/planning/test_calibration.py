import json
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.errors import ConfigError
from trigger_sim.planning import calibrate
from trigger_sim.planning.calibrate import fixed_cost_ms, pooled
from trigger_sim.planning.calibration import (CPU_STEPS, MODELS, ModelCurve, ServerKind, from_json, load, load_merged, save,
                                              server_kind, to_json)

from .synthetic import calibration


def test_a_calibration_reads_back_as_written(tmp_path):
    cal = calibration(rows=30, spread=0.3, host={"cores": 2.0, "overhead_cpu_ms_per_event": 1.5})
    save(cal, tmp_path / "c.json")
    back = load(tmp_path / "c.json")
    assert to_json(back) == to_json(cal)
    assert back.n_events == 30 and back.servers["cpu"].models["jet_tagger"].empirical


def test_wrong_format_version_and_keys_are_named(tmp_path):
    good = to_json(calibration(rows=3))
    with pytest.raises(ConfigError, match="not a trigger-sim calibration"):
        from_json({"format": "other"})
    with pytest.raises(ConfigError, match="version 9"):
        from_json({**good, "version": 9})
    bad = json.loads(json.dumps(good))
    bad["servers"]["cpu"]["models"]["jet_tagger"]["speed"] = 1
    with pytest.raises(ConfigError, match="servers.cpu.models.jet_tagger: unknown key"):
        from_json(bad)
    short = json.loads(json.dumps(good))
    short["events"]["menu"] = [0.1]
    with pytest.raises(ConfigError, match="differ in length"):
        from_json(short)
    with pytest.raises(ConfigError, match="known: cpu"):
        server_kind(calibration(rows=3), "gpu")


def test_server_files_merge_into_an_events_calibration(tmp_path):
    events = calibration(rows=5)
    save(events, tmp_path / "events.json")
    gpu = to_json(calibration(rows=1))
    gpu["events"] = {}
    gpu["servers"] = {"gpu": gpu["servers"]["cpu"]}
    (tmp_path / "gpu.json").write_text(json.dumps(gpu))
    merged = load_merged([tmp_path / "events.json", tmp_path / "gpu.json"])
    assert set(merged.servers) == {"cpu", "gpu"} and merged.n_events == 5


def write_run_table(folder, n=150):
    rng = np.random.default_rng(0)
    cols = {"outcome": ["accepted" if i % 4 == 0 else "rejected" for i in range(n)],
            "build_ms": rng.uniform(1, 2, n), "transfer_ms": rng.uniform(0.2, 0.4, n)}
    for s in CPU_STEPS:
        cols[f"{s}_ms"] = rng.uniform(0.1, 1.0, n)
    cols["edge_classifier_ms"] = rng.uniform(10, 20, n)
    cols["jet_tagger_ms"] = rng.uniform(1, 3, n)
    cols["edge_classifier_path"] = ["triton"] * n
    cols["jet_tagger_path"] = ["skipped" if i % 5 == 0 else "triton" for i in range(n)]
    cols["n_edges"] = rng.integers(1000, 9000, n)
    cols["n_jets"] = rng.integers(0, 6, n)
    cols["outcome"][7] = "debug"  # not used: decided abnormally
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), folder / "events.parquet")
    return cols


def test_calibrating_from_a_run_folder_keeps_each_event_whole(tmp_path):
    cols = write_run_table(tmp_path / "run")
    cal = calibrate.from_run_folder(tmp_path / "run", pileup=20.0, rtt_ms=0.5)
    assert cal.n_events == 149
    i = 3  # row 3 of the table is row 3 of the calibration (before the dropped row 7)
    assert cal.events["graph"][i] == pytest.approx(cols["graph_ms"][i])
    assert cal.events["edge_classifier_demand"][i] == pytest.approx(cols["edge_classifier_ms"][i] - 0.5)
    assert not cal.events["jet_tagger_called"][0] and cal.events["jet_tagger_demand"][0] == 0
    curve = cal.servers["cpu-local"].models["edge_classifier"]
    assert curve.empirical and curve.instances == 2
    assert set(MODELS) == set(cal.servers["cpu-local"].models)
    assert "idle_gap_ms" not in cal.events and "no worker" in cal.provenance["idle_gap_ms"]


def test_each_event_keeps_its_workers_idle_time_before_it(tmp_path):
    """With the worker, decision time and worker time in the table, each kept row carries how
    long its worker idled before it (start = decided - worker_total); a dropped row still
    occupied its worker."""
    cols = write_run_table(tmp_path / "run")
    n = len(cols["outcome"])
    cols["worker"] = ["worker-0.0" if i % 2 == 0 else "worker-1.0" for i in range(n)]
    cols["worker_total_ms"] = [20.0] * n
    cols["decided_ns"] = [int((100 + 50 * i) * 1e6) for i in range(n)]  # each worker: one event every 100 ms
    pq.write_table(pa.table(cols), tmp_path / "run" / "events.parquet")
    gaps = calibrate.from_run_folder(tmp_path / "run").events["idle_gap_ms"]
    assert np.isnan(gaps[0]) and np.isnan(gaps[1])  # each worker's first
    assert np.allclose(gaps[2:], 80.0)  # 100 ms apart, 20 ms each; the dropped row 7 counted for its worker


def test_a_run_without_enough_good_events_is_refused(tmp_path):
    write_run_table(tmp_path / "run", n=50)
    with pytest.raises(ConfigError, match="at least 100"):
        calibrate.from_run_folder(tmp_path / "run")
    with pytest.raises(ConfigError, match="no per-event table"):
        calibrate.from_run_folder(tmp_path)


def test_a_perf_analyzer_csv_gives_a_straight_line(tmp_path):
    path = tmp_path / "perf.csv"
    path.write_text("Concurrency,Inferences/Second,Server Compute Infer\n1,500,2000\n2,900,2200\n4,1500,2600\n")
    curve = calibrate.server_from_perf_analyzer(path, "jet_tagger", instances=1, max_batch=16)
    assert curve.fixed_ms == pytest.approx(1.8) and curve.per_request_ms == pytest.approx(0.2)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="columns"):
        calibrate.server_from_perf_analyzer(tmp_path / "bad.csv", "jet_tagger", instances=1)


def test_a_model_run_in_the_worker_counts_as_its_cpu_before_the_call(tmp_path):
    """A run whose workers ran the edge classifier themselves (not served): its step time is the
    worker's CPU in the step before the call, and no server demand."""
    cols = write_run_table(tmp_path / "run")
    cols["edge_classifier_path"] = [""] * len(cols["outcome"])  # ran in the worker: no server path
    pq.write_table(pa.table(cols), tmp_path / "run" / "events.parquet")
    cal = calibrate.from_run_folder(tmp_path / "run", local_models=("edge_classifier",))
    assert cal.n_events == 149
    assert cal.events["graph"][3] == pytest.approx(cols["graph_ms"][3] + cols["edge_classifier_ms"][3])
    assert not cal.events["edge_classifier_called"].any() and not cal.events["edge_classifier_demand"].any()
    assert cal.events["decode"][3] == pytest.approx(cols["decode_ms"][3])


def test_a_fixed_server_answers_after_its_time_and_uses_no_host_cpu(tmp_path):
    write_run_table(tmp_path / "run")
    cal = calibrate.with_fixed_server(calibrate.from_run_folder(tmp_path / "run"), "jet_tagger", 40.0, 8)
    curve = cal.servers["cpu-local"].models["jet_tagger"]
    assert (curve.instances, curve.cpu_share, curve.empirical) == (8, 0.0, False)
    assert curve.batch_ms([3.0], [1.0]) == 40.0
    assert cal.servers["cpu-local"].models["edge_classifier"].empirical  # the other model unchanged
    assert "40 ms" in cal.provenance["fixed_server"]
    with pytest.raises(ConfigError, match="instances >= 1"):
        calibrate.with_fixed_server(cal, "jet_tagger", 40.0, 0)


def test_process_cpu_measured_in_the_run_sets_the_overhead_and_the_server_share(tmp_path):
    """The CPU per event measured in the calibration run itself gives the farm's own overhead
    (readout + builder + collector + the workers' CPU outside their timed steps) and the server's CPU share of a call (its CPU / the mean
    demand); it wins over benchmarks.json; a group missing from it is named."""
    write_run_table(tmp_path / "run")
    cpu = {"readout": 1.0, "builder": 0.5, "supervisor_collector": 0.25, "workers": 5.0, "tritonserver": 6.0}
    bench = tmp_path / "benchmarks.json"
    bench.write_text(json.dumps({"cases": {"farm": {"metrics": {f"cpu_ms_per_event_at_sustainable.{k}": {"median": 99.0}
                                                               for k in cpu}}}}))
    cal = calibrate.from_run_folder(tmp_path / "run", benchmarks=bench,
                                    process_cpu=calibrate.ProcessCpu(cpu, "the calibration run itself"))
    steps_ms = sum(cal.events[s].mean() for s in CPU_STEPS)  # the worker's CPU outside them counts with the overhead
    assert cal.host["overhead_cpu_ms_per_event"] == pytest.approx(1.75 + 5.0 - steps_ms)
    assert cal.host["worker_outside_cpu_ms_per_event"] == pytest.approx(5.0 - steps_ms)  # for workers on their own cores
    mean_demand = sum(cal.events[f"{m}_demand"].mean() for m in MODELS)
    assert cal.servers["cpu-local"].models["edge_classifier"].cpu_share == pytest.approx(6.0 / mean_demand)
    assert "the calibration run itself" in cal.provenance["process_cpu"]
    from_bench = calibrate.from_run_folder(tmp_path / "run", benchmarks=bench)
    assert from_bench.host["overhead_cpu_ms_per_event"] == pytest.approx(4 * 99.0 - steps_ms)
    with pytest.raises(ConfigError, match="tritonserver"):
        calibrate.from_run_folder(tmp_path / "run", process_cpu=calibrate.ProcessCpu({"readout": 1.0}, "x"))


def test_the_credit_round_trip_is_the_gap_before_an_event_that_waited(tmp_path):
    """Per worker, an event that waited in the builder for a credit was sent when the worker's
    previous result came back: the gap from that event's end to its dispatch is the round
    trip; events that did not wait say nothing about it; too few that waited: not estimated."""
    n = 150
    cols = write_run_table(tmp_path / "run", n=n)
    cols.update(worker=["w0"] * n, l1_time_ns=[0] * n, build_ms=[1.0] * n, transfer_ms=[0.5] * n,
                worker_total_ms=[10.0] * n, queue_ms=[0.0] * n)
    # one worker, back to back: event k sent at 1 + 12 k (a 1.5 ms gap after 10.5 ms of transfer + work)
    cols["queue_ms"] = [12.0 * k for k in range(n)]
    cols["outcome"] = ["rejected"] * n
    pq.write_table(pa.table(cols), tmp_path / "run" / "events.parquet")
    cal = calibrate.from_run_folder(tmp_path / "run")
    assert cal.host["dispatch_ms"] == pytest.approx(1.5)
    assert "149 gaps" in cal.provenance["dispatch_ms"]
    cols["queue_ms"] = [0.0] * n  # nothing waited
    pq.write_table(pa.table(cols), tmp_path / "run" / "events.parquet")
    cal = calibrate.from_run_folder(tmp_path / "run")
    assert cal.host["dispatch_ms"] == 0.0 and "only 0 events waited" in cal.provenance["dispatch_ms"]


def test_the_wait_for_a_node_slot_counts_before_the_build_in_the_credit_round_trip(tmp_path):
    """A table with assign_ms: an event was sent at l1 + assign + build + queue. The same
    back-to-back worker as above with 5 ms of each event's wait moved from the builder's queue
    to the readout still gives the 1.5 ms round trip, and the provenance says the build is
    the build proper."""
    n = 150
    cols = write_run_table(tmp_path / "run", n=n)
    cols.update(worker=["w0"] * n, l1_time_ns=[0] * n, build_ms=[1.0] * n, transfer_ms=[0.5] * n,
                worker_total_ms=[10.0] * n, assign_ms=[0.0] + [5.0] * (n - 1),
                queue_ms=[0.0] + [12.0 * k - 5.0 for k in range(1, n)], outcome=["rejected"] * n)
    pq.write_table(pa.table(cols), tmp_path / "run" / "events.parquet")
    cal = calibrate.from_run_folder(tmp_path / "run")
    assert cal.host["dispatch_ms"] == pytest.approx(1.5)
    assert "149 gaps" in cal.provenance["dispatch_ms"] and "first fragment" in cal.provenance["build"]


@settings(max_examples=15, deadline=None)
@given(rate_hz=st.sampled_from([50.0, 150.0, 400.0]), workers=st.integers(1, 3), seed=st.integers(0, 1000))
def test_the_assignment_round_trip_is_recovered_from_a_table_whatever_the_wait_for_a_slot(rate_hz, workers, seed):
    """A model farm whose events each take a known round trip (0.5-3 ms) from a free node slot
    to the node, at rates where accepts wait for slots or not: from the table it writes (Level-1
    time, assign, decided), the estimator recovers every event's round trip."""
    from trigger_sim.planning.farm_model import FarmModel
    from trigger_sim.planning.spec import ArrivalSpec, FarmSpec, PlanSpec

    from .synthetic import calibration

    cal = calibration(rows=200, cpu_ms=10.0, called=False, spread=0.5, seed=seed)
    trip = np.random.default_rng(seed).uniform(0.5, 3.0, 200)
    cal = replace(cal, events={**cal.events, "assign": trip})
    farm = FarmSpec(workers_per_node=workers, readout_buffer_events=100_000, budget_ms=1e6)
    model = FarmModel(PlanSpec(ArrivalSpec(rate_hz=rate_hz), farm, events=600, seed=seed), cal)
    model.run()
    cols = {"l1_time_ns": list(model.t_l1_ms * 1e6), "assign_ms": list(model.assign_ms),
            "decided_ns": list(model.decided_ms * 1e6)}
    out, note = calibrate.assign_round_trip_ms(cols, node_slots=2 * workers)
    assert out == pytest.approx(model.draws.assign_ms, abs=1e-6)
    assert "events waited" in note
    if rate_hz * 10e-3 > workers:  # overloaded: most accepts waited for a slot, and assign shows it
        assert np.median(model.assign_ms) > 10 * np.median(out)
        _, too_few = calibrate.assign_round_trip_ms(cols, node_slots=2 * workers - 1)
        assert "below 0" in too_few, "a count below the node's slots is flagged"


def test_the_node_slots_come_from_the_runs_summary(tmp_path):
    """summary.json's workers.node_slots (what run control recorded) sets the count the round
    trip is reconstructed with; a summary without it: its workers x 2."""
    n = 150
    cols = write_run_table(tmp_path / "run", n=n)
    cols.update(l1_time_ns=[k * 1_000_000 for k in range(n)], assign_ms=[1.0] * n,
                decided_ns=[k * 1_000_000 + 5_000_000 for k in range(n)])
    pq.write_table(pa.table(cols), tmp_path / "run" / "events.parquet")
    summary = {"level1": {"rate_hz_configured": 10.0, "pattern": "poisson"}, "inference": {},
               "workers": {"count": 2, "node_slots": 10}}
    (tmp_path / "run" / "summary.json").write_text(json.dumps(summary))
    assert "the node's 10 slots" in calibrate.from_run_folder(tmp_path / "run").provenance["assign"]
    del summary["workers"]["node_slots"]
    (tmp_path / "run" / "summary.json").write_text(json.dumps(summary))
    assert "the node's 4 slots" in calibrate.from_run_folder(tmp_path / "run").provenance["assign"]


def test_the_credit_round_trip_follows_each_workers_events_including_those_not_calibrated_on(tmp_path):
    """An event the calibration leaves out (a fallback call, an abnormal decision) still ran on
    its worker: the next event's credit came back with its result, not with the one before it.
    Chained over the calibrated events only, every gap after a left-out event would also hold
    that event's whole time in the worker."""
    n = 150
    cols = write_run_table(tmp_path / "run", n=n)
    cols.update(worker=["w0"] * n, l1_time_ns=[0] * n, build_ms=[1.0] * n, transfer_ms=[0.5] * n,
                worker_total_ms=[10.0] * n, queue_ms=[12.0 * k for k in range(n)], outcome=["rejected"] * n)
    for k in range(10, n, 10):  # every tenth event fell back to the worker's own model: not calibrated on
        cols["edge_classifier_path"][k] = "fallback"
    pq.write_table(pa.table(cols), tmp_path / "run" / "events.parquet")
    cal = calibrate.from_run_folder(tmp_path / "run")
    assert cal.n_events == n - 14
    assert cal.host["dispatch_ms"] == pytest.approx(1.5)
    assert "149 gaps" in cal.provenance["dispatch_ms"]


def test_deflating_for_contention_makes_the_model_reproduce_the_calibrated_step_times_at_their_rate():
    """Steps timed at a rate where two workers share one core already hold that contention:
    undeflated, the model's mean worker time at that rate is well above the calibrated 6 ms;
    deflated, it is back near it, and the stretch is recorded."""
    from trigger_sim.planning.calibrate import deflate_contention
    from trigger_sim.planning.model_summary import simulate
    from trigger_sim.planning.spec import ArrivalSpec, FarmSpec, PlanSpec

    from .synthetic import calibration

    cal = calibration(cpu_ms=6.0, called=False, spread=0.5)
    farm = FarmSpec(workers_per_node=2, host_cores=1, readout_buffer_events=10_000, budget_ms=1e6)
    rate = 100.0  # the core 60 % busy

    def worker_mean(c):
        return simulate(PlanSpec(ArrivalSpec(rate_hz=rate), farm, events=6000, seed=3), c)["latency_ms"]["worker_total"]["mean"]

    deflated = deflate_contention(cal, farm, rate, events=6000, seed=3)
    assert worker_mean(cal) > 6.0 * 1.15
    assert worker_mean(deflated) == pytest.approx(6.0, rel=0.08)
    assert deflated.host["contention_stretch"] > 1.15 and "contention_deflation" in deflated.provenance
    assert deflate_contention(cal, FarmSpec(), rate) is cal  # no shared host: nothing to deflate


def test_a_gap_before_an_event_that_did_not_exist_yet_is_no_credit_round_trip(tmp_path):
    """A worker idle for 30 ms before its next event was complete, which then waited 0.6 ms in
    the builder (for the builder, not for a credit): that gap is idle time, not the round trip.
    Counted, these 15 gaps of 32.1 ms would raise the mean from 1.5 ms to ~5 ms."""
    n = 150
    cols = write_run_table(tmp_path / "run", n=n)
    l1_ns, queue = [], []
    t = 1.0  # when event k is sent
    for k in range(n):
        if k % 10 == 5:  # complete 31.5 ms after the worker ended (Level-1 time + 1 ms of building), sent 0.6 ms later
            t += 30.6
            l1_ns.append(int((t - 0.6 - 1.0) * 1e6))
            queue.append(0.6)
        else:  # complete at 1 ms, waiting for the credit: sent 1.5 ms after the worker ended
            l1_ns.append(0)
            queue.append(t - 1.0)
        t += 10.5 + 1.5
    cols.update(worker=["w0"] * n, l1_time_ns=l1_ns, build_ms=[1.0] * n, transfer_ms=[0.5] * n,
                worker_total_ms=[10.0] * n, queue_ms=queue, outcome=["rejected"] * n)
    pq.write_table(pa.table(cols), tmp_path / "run" / "events.parquet")
    cal = calibrate.from_run_folder(tmp_path / "run")
    assert cal.host["dispatch_ms"] == pytest.approx(1.5)
    assert "134 gaps" in cal.provenance["dispatch_ms"]


@given(st.lists(st.tuples(st.integers(1, 40), st.floats(0.5, 20.0), st.floats(0.0, 1.0), st.floats(0.5, 30.0)),
                min_size=1, max_size=4))
@settings(max_examples=40, deadline=None)
def test_pooled_runs_keep_every_event_and_weigh_each_scalar_as_one_run_would(runs):
    """Pooling calibration runs: every event of every run, in order; each host scalar and the
    round trip the mean over all their events; a CPU share the runs' server CPU together over
    their demand together; the fixed cost from the pooled calls: as one run holding them would."""
    cals = []
    for i, (rows, cpu_ms, share, demand) in enumerate(runs):
        curves = {m: ModelCurve(instances=1, empirical=True, cpu_share=share) for m in MODELS}
        cal = calibration(rows=rows, cpu_ms=cpu_ms, demand_ms={m: demand for m in MODELS}, curves=curves,
                          host={"cores": 2.0, "dispatch_ms": cpu_ms / 2}, seed=i)
        cals.append(replace(cal, rtt_ms=cpu_ms, provenance={"run": {"rate_hz": 60.0, "seed": i}}))
    out = pooled(cals)
    n = sum(c.n_events for c in cals)
    assert out.n_events == n
    for name in cals[0].events:
        assert np.array_equal(out.events[name], np.concatenate([c.events[name] for c in cals]))
    assert out.host["cores"] == pytest.approx(2.0)
    assert out.host["dispatch_ms"] == pytest.approx(sum(c.n_events * c.host["dispatch_ms"] for c in cals) / n)
    assert out.rtt_ms == pytest.approx(sum(c.n_events * c.rtt_ms for c in cals) / n)
    demand = [sum(c.events[f"{m}_demand"].mean() for m in MODELS) for c in cals]
    server_cpu = sum(c.n_events * c.servers["cpu"].models["jet_tagger"].cpu_share * d for c, d in zip(cals, demand))
    pooled_demand = sum(out.events[f"{m}_demand"].mean() for m in MODELS)
    assert out.servers["cpu"].models["jet_tagger"].cpu_share == pytest.approx(server_cpu / (n * pooled_demand))
    all_calls = np.concatenate([np.full(r[0], r[3]) for r in runs])
    assert out.servers["cpu"].models["jet_tagger"].fixed_ms == pytest.approx(np.percentile(all_calls, 1))  # of every run's calls
    assert [p["run"]["seed"] for p in out.provenance["runs"]] == list(range(len(cals)))
    assert out.provenance["run"]["rate_hz"] == 60.0  # the runs' common rate, for what reads it


def test_runs_of_different_farms_or_servers_are_not_pooled():
    base = calibration(rows=10, host={"cores": 2.0})
    with pytest.raises(ConfigError, match=r"not of the same farm \(pile-up differ"):
        pooled([base, replace(base, pileup=60.0)])
    with pytest.raises(ConfigError, match="host cores differ"):
        pooled([base, replace(base, host={"cores": 16.0})])
    with pytest.raises(ConfigError, match="event columns differ"):
        pooled([base, replace(base, events={**base.events, "assign": np.zeros(10)})])
    with pytest.raises(ConfigError, match="server kinds differ"):
        pooled([base, replace(base, servers={**base.servers, "gpu": base.servers["cpu"]})])
    other = replace(base, servers={"cpu": ServerKind({m: ModelCurve(instances=2, empirical=True) for m in MODELS})})
    with pytest.raises(ConfigError, match="beyond its CPU share and fixed cost"):
        pooled([base, other])
    with pytest.raises(ConfigError, match="no calibration"):
        pooled([])
