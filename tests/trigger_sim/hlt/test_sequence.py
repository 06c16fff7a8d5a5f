"""Tests of trigger_sim.hlt.sequence: the per-event HLT sequence on simulated events."""

from __future__ import annotations

import concurrent.futures

import numpy as np
import pytest

from trigger_sim import clock
from trigger_sim.accounting import ACCEPTED, DEBUG, REJECTED
from trigger_sim.config import CONFIG_DIR, FarmConfig, with_overrides
from trigger_sim.detector import tower_centers
from trigger_sim.hlt.sequence import SLOT_WAIT, STEPS, WAIT_SUFFIX, WAITS, EventResult, HltSequence
from trigger_sim.hlt.slots import Finished, SlotScheduler
from trigger_sim.inference.breaker import CircuitBreaker
from trigger_sim.errors import InferenceTimeout
from trigger_sim.inference.service import EXPIRED, FALLBACK, SKIPPED, TRITON, InferenceService
from trigger_sim.menu import Chain, Menu, load_menu, missing_et_gev
from trigger_sim.models.registry import EDGE_CLASSIFIER, JET_TAGGER, MODEL_NAMES, model_spec
from trigger_sim.partition import unpack_calo
from trigger_sim.simulation import event_fragments, simulate
from trigger_sim.wire import decode_fragment, encode_fragment

CFG = FarmConfig()
MENU = load_menu(CFG.menu)
LOCAL = {name: model_spec(name).make_local() for name in MODEL_NAMES}
N_EVENTS = 30


class LocalAsRemote:
    """A stand-in for the Triton backend: the same model, answering every call."""

    def __init__(self, model: str = JET_TAGGER):
        self.model = model
        self.calls = 0

    def infer(self, inputs, timeout_s: float) -> np.ndarray:
        assert timeout_s > 0
        self.calls += 1
        return LOCAL[self.model].infer(inputs)


TaggerAsRemote = LocalAsRemote


def service(remote=None, edge_remote=None) -> dict[str, InferenceService]:
    """Both models' services: the jet tagger with `remote`, the edge classifier with `edge_remote`."""
    out = {}
    for name, rem in ((EDGE_CLASSIFIER, edge_remote), (JET_TAGGER, remote)):
        spec = model_spec(name)
        out[name] = InferenceService(rem, LOCAL[name], CircuitBreaker(3, 10**9), timeout_s=10.0 if name == EDGE_CLASSIFIER else 0.1,
                                     size_of=spec.size_of, empty_output=spec.empty_output())
    return out


def frames_of(l1_id: int, config: FarmConfig = CFG) -> list[list]:
    return [encode_fragment(f) for f in event_fragments(config, l1_id, l1_time_ns=1000 + l1_id)]


@pytest.fixture(scope="module")
def events() -> dict[int, list[list]]:
    return {i: frames_of(i) for i in range(N_EVENTS)}


@pytest.fixture(scope="module")
def fallback_results(events):
    seq = HltSequence(CFG, MENU, service(remote=None))
    return {i: seq.process(i, frames) for i, frames in events.items()}


def test_every_event_is_accepted_or_rejected_with_all_steps_timed(fallback_results):
    chain_streams = {c.name: c.streams for c in MENU.chains}
    for l1_id, r in fallback_results.items():
        assert r.l1_id == l1_id
        assert r.outcome in (ACCEPTED, REJECTED), r.reason
        assert r.reason == ""
        assert set(r.steps_ms) == set(STEPS) | {"worker_total"}
        assert all(v >= 0 for v in r.steps_ms.values())
        assert r.steps_ms["worker_total"] >= max(r.steps_ms[s] for s in STEPS)
        assert (r.outcome == ACCEPTED) == bool(r.streams)
        assert set(r.chains) <= set(chain_streams)
        expected_streams = {s for c in r.chains for s in chain_streams[c]}
        assert set(r.streams) == expected_streams and len(r.streams) == len(set(r.streams))
        assert r.n_hits == len(simulate(CFG, l1_id).hits.layer)
        assert 0 <= r.n_jets <= CFG.features.max_jets
        assert r.n_edges >= 0
        assert set(r.inference) == set(MODEL_NAMES)
        if r.n_jets or r.n_edges:
            assert (r.inference_path, r.inference_reason) == (FALLBACK, "no_server")
        else:
            assert r.inference_path == SKIPPED
        assert r.inference[JET_TAGGER] == (FALLBACK if r.n_jets else SKIPPED)
        msg = r.to_message()
        assert msg["l1_id"] == l1_id and msg["outcome"] == r.outcome and msg["streams"] == list(r.streams)
    outcomes = {r.outcome for r in fallback_results.values()}
    assert outcomes == {ACCEPTED, REJECTED}, "the sample should hold both accepted and rejected events"


def test_decisions_do_not_depend_on_which_inference_path_answered(events, fallback_results):
    remote, edge_remote = LocalAsRemote(JET_TAGGER), LocalAsRemote(EDGE_CLASSIFIER)
    seq = HltSequence(CFG, MENU, service(remote, edge_remote))
    with_jets = 0
    for l1_id, frames in events.items():
        r = seq.process(l1_id, frames)
        f = fallback_results[l1_id]
        assert (r.outcome, r.streams, r.chains, r.n_jets, r.n_hits, r.n_edges, r.n_tracks) == (
            f.outcome, f.streams, f.chains, f.n_jets, f.n_hits, f.n_edges, f.n_tracks,
        )
        if r.n_jets:
            with_jets += 1
            assert r.inference[JET_TAGGER] == TRITON
        assert r.inference_path == TRITON
    assert remote.calls == with_jets > 0
    assert edge_remote.calls == len(events)


def test_processing_is_deterministic(events, fallback_results):
    seq = HltSequence(CFG, MENU, service())
    for l1_id in list(events)[:5]:
        r = seq.process(l1_id, events[l1_id])
        f = fallback_results[l1_id]
        assert (r.outcome, r.streams, r.chains) == (f.outcome, f.streams, f.chains)


def test_corrupted_frame_goes_to_hlt_error(events):
    seq = HltSequence(CFG, MENU, service())
    frames = [list(fr) for fr in events[3]]
    payload = bytearray(frames[0][1])
    payload[len(payload) // 2] ^= 0x01
    frames[0][1] = bytes(payload)
    r = seq.process(3, frames)
    assert r.outcome == DEBUG
    assert r.streams == ("HltError",)
    assert "ChecksumMismatch" in r.reason and "crc32" in r.reason
    assert r.chains == ()
    assert "worker_total" in r.steps_ms


def test_corrupted_header_goes_to_hlt_error(events):
    seq = HltSequence(CFG, MENU, service())
    frames = [list(fr) for fr in events[4]]
    header = bytearray(frames[2][0])
    header[16] ^= 0x80  # a bit of the l1_id field: caught by the checksum
    frames[2][0] = bytes(header)
    r = seq.process(4, frames)
    assert (r.outcome, r.streams) == (DEBUG, ("HltError",))
    assert "ChecksumMismatch" in r.reason


def test_fragment_of_another_event_goes_to_hlt_error(events):
    seq = HltSequence(CFG, MENU, service())
    frames = list(events[5])
    frames[1] = events[6][1]
    r = seq.process(5, frames)
    assert (r.outcome, r.streams) == (DEBUG, ("HltError",))
    assert "L1 id 6" in r.reason and "event is 5" in r.reason
    # the whole event under the wrong id is rejected too
    r = seq.process(99, events[5])
    assert (r.outcome, r.streams) == (DEBUG, ("HltError",))


def test_bad_fragment_contents_go_to_hlt_error():
    from trigger_sim.event import Fragment, FragmentHeader

    bad = Fragment(
        FragmentHeader(1, 8, 0, 0x200, 0),
        {"tower_id": np.array([10**6], np.uint32), "energy_gev": np.ones((1, 2), np.float32)},
    )
    frames = frames_of(8)
    frames[-1] = encode_fragment(bad)
    r = HltSequence(CFG, MENU, service()).process(8, frames)
    assert (r.outcome, r.streams) == (DEBUG, ("HltError",))
    assert "FragmentDataError" in r.reason


def test_tiny_budget_gives_hlt_timeout(events):
    cfg = with_overrides(CFG, worker={"budget_ms": 1e-6})
    seq = HltSequence(cfg, MENU, service())
    for l1_id in (0, 1, 2):
        r = seq.process(l1_id, events[l1_id])
        assert r.outcome == DEBUG
        assert r.streams == ("HltTimeout",)
        assert "budget" in r.reason and "decode" in r.reason
        assert r.chains == ()
        assert "worker_total" in r.steps_ms


def test_timeout_names_the_step_where_the_budget_ran_out(events):
    class Ticking:
        """Advances 10 ms on every reading."""

        def __init__(self):
            self.t = 0

        def __call__(self):
            self.t += 10 * clock.NS_PER_MS
            return self.t

    cfg = with_overrides(CFG, worker={"budget_ms": 25.0})
    seq = HltSequence(cfg, MENU, service(), now_ns=Ticking())
    r = seq.process(0, events[0])
    # start at 10 (deadline 35), decode at 20, unpack at 30, calo at 40 > 35
    assert r.streams == ("HltTimeout",)
    assert r.reason.endswith("after step calo")
    assert "25 ms" in r.reason
    assert [r.steps_ms[s] for s in ("decode", "unpack", "calo")] == pytest.approx([10.0] * 3)
    assert "graph" not in r.steps_ms
    assert r.steps_ms["worker_total"] == pytest.approx(40.0)


def test_inference_deadline_is_capped_by_the_event_budget(events):
    seen = []

    class Recording(TaggerAsRemote):
        def infer(self, inputs, timeout_s):
            seen.append(timeout_s)
            return super().infer(inputs, timeout_s)

    cfg = with_overrides(CFG, worker={"budget_ms": 2000.0})
    services = service(Recording())
    services[JET_TAGGER].timeout_s = 10.0  # longer than the whole budget: the budget must cap it
    seq = HltSequence(cfg, MENU, services)
    for l1_id in range(5):
        seq.process(l1_id, events[l1_id])
    assert seen and all(0 < t <= 0.8 * 2.0 for t in seen)


def test_a_model_unanswered_at_the_soft_timeout_sends_the_event_to_hlt_timeout_without_a_fallback(events):
    """The server holds the graph until the call's deadline, the event's soft timeout: the
    local GNN would only delay an event that is leaving into HltTimeout anyway."""
    now = [10**12]

    class HeldUntilTheDeadline:
        def infer(self, inputs, timeout_s):
            now[0] += int(timeout_s * clock.NS_PER_S)
            raise InferenceTimeout("no answer")

    class CountingLocal:
        calls = 0

        def infer(self, inputs, timeout_s=0.0):
            CountingLocal.calls += 1
            return LOCAL[EDGE_CLASSIFIER].infer(inputs)

    services = service()
    spec = model_spec(EDGE_CLASSIFIER)
    services[EDGE_CLASSIFIER] = InferenceService(HeldUntilTheDeadline(), CountingLocal(), CircuitBreaker(3, 10**9), timeout_s=10.0,
                                                 now_ns=lambda: now[0], size_of=spec.size_of, empty_output=spec.empty_output())
    cfg = with_overrides(CFG, worker={"budget_ms": 100.0})
    r = HltSequence(cfg, MENU, services, now_ns=lambda: now[0]).process(0, events[0])
    assert (r.outcome, r.streams, r.chains) == (DEBUG, ("HltTimeout",), ())
    assert r.reason.endswith(f"after step {EDGE_CLASSIFIER}")
    assert CountingLocal.calls == 0
    assert (r.inference, r.inference_path, r.inference_reason) == ({EDGE_CLASSIFIER: EXPIRED}, EXPIRED, "")
    assert r.steps_ms[EDGE_CLASSIFIER] == pytest.approx(80.0)  # the whole soft budget went to the call
    assert services[EDGE_CLASSIFIER].counters.expired == 1


@pytest.mark.parametrize("first, path, reason", [(TRITON, EXPIRED, ""), (SKIPPED, EXPIRED, ""), (FALLBACK, FALLBACK, "unavailable")])
def test_an_expired_model_marks_the_event_unless_it_already_fell_back(first, path, reason):
    r = EventResult(1, DEBUG)
    r.record_inference(EDGE_CLASSIFIER, first, "unavailable" if first == FALLBACK else "")
    r.record_inference(JET_TAGGER, EXPIRED, "timeout")
    assert (r.inference_path, r.inference_reason) == (path, reason)  # a reason only with a fallback
    assert r.inference == {EDGE_CLASSIFIER: first, JET_TAGGER: EXPIRED}


def test_error_result():
    r = HltSequence(CFG, MENU, service()).error_result(12, "no frames")
    assert (r.l1_id, r.outcome, r.streams, r.reason) == (12, DEBUG, ("HltError",), "no frames")


def test_met_chains_see_the_missing_et_of_the_unpacked_towers(events):
    eta, phi = tower_centers(CFG.calo)
    for l1_id in list(events)[:5]:
        em, had = unpack_calo([decode_fragment(f) for f in events[l1_id]], CFG.calo)
        met_gev = missing_et_gev(em, had, eta, phi)
        at = Chain("at", "met", ("S",), min_met_gev=met_gev)
        above = Chain("above", "met", ("S",), min_met_gev=float(np.nextafter(met_gev, np.inf)))
        r = HltSequence(CFG, Menu((at, above)), service()).process(l1_id, events[l1_id])
        assert (r.outcome, r.chains) == (ACCEPTED, ("at",)), r.reason


def test_comparison_menu_decides_simulated_events(events):
    seq = HltSequence(CFG, load_menu(CONFIG_DIR / "menu_cms_compare.toml"), service())
    results = [seq.process(i, frames) for i, frames in list(events.items())[:10]]
    assert all(r.outcome in (ACCEPTED, REJECTED) for r in results)


class FutureServer:
    """A fake asynchronous server for both models: `submit` returns a future that the test
    resolves later, alternately the newest and the oldest request (answers out of order)."""

    def __init__(self):
        self.open: list = []  # (future, model, inputs)
        self.submitted = 0
        self.most_in_flight = 0

    def backend(self, model: str):
        server = self

        class Remote:
            def infer(self, inputs, timeout_s):  # pragma: no cover - the slots path submits
                raise AssertionError("a call with slots must not block")

            def submit(self, inputs, timeout_s):
                future = concurrent.futures.Future()
                server.open.append((future, model, inputs))
                server.submitted += 1
                server.most_in_flight = max(server.most_in_flight, len(server.open))
                return future

        return Remote()

    def answer_one(self) -> None:
        future, model, inputs = self.open.pop(-1 if self.submitted % 2 else 0)
        future.set_result(LOCAL[model].infer(inputs))


def run_with_slots(seq: HltSequence, events: dict[int, list[list]], n_slots: int, server: FutureServer) -> tuple[dict, SlotScheduler]:
    """What the worker's loop does, without sockets: admit while a slot is free, run the event
    the scheduler picks, and when none can run, let the server answer one request."""
    sched = SlotScheduler(n_slots)
    todo, out, answered = list(events.items()), {}, []
    while todo or sched.held:
        while sched.free and todo:
            l1_id, frames = todo.pop(0)
            sched.admit(l1_id, seq.run(l1_id, frames, asynchronous=True))
        for token in answered:
            sched.answered(token)
        answered.clear()
        token = sched.next_ready()
        if token is None:
            server.answer_one()
            continue
        step = sched.resume(token)
        if isinstance(step, Finished):
            out[step.l1_id] = step.result
        else:
            step.wait.future.add_done_callback(lambda _, t=token: answered.append(t))
    return out, sched


def decision_digest(results: dict[int, EventResult]) -> list:
    return sorted((i, r.outcome, r.chains, r.streams, r.n_tracks, r.n_jets) for i, r in results.items())


def test_decisions_with_four_slots_equal_one_slot(events, fallback_results):
    """Four events held at once, requests answered out of order: the same decisions as one
    event at a time, every model answered by the (fake) server, and step times that add up."""
    server = FutureServer()
    roomy = with_overrides(CFG, worker={"budget_ms": 10_000.0})  # a slow test host must not time events out
    seq = HltSequence(roomy, MENU, service(server.backend(JET_TAGGER), server.backend(EDGE_CLASSIFIER)))
    results, sched = run_with_slots(seq, events, 4, server)
    assert decision_digest(results) == decision_digest(fallback_results)
    assert sched.peak_held == 4 and server.most_in_flight >= 2  # events did overlap
    assert server.submitted == sum(1 + bool(r.n_jets) for r in results.values())
    assert all(r.inference_path == TRITON for r in results.values())
    for r in results.values():
        assert set(r.steps_ms) >= set(STEPS) | {"worker_total", SLOT_WAIT, EDGE_CLASSIFIER + WAIT_SUFFIX}
        assert set(r.steps_ms) <= set(STEPS) | set(WAITS) | {"worker_total"}
        own_and_waits = sum(r.steps_ms[s] for s in (*STEPS, *WAITS) if s in r.steps_ms)
        assert own_and_waits == pytest.approx(r.steps_ms["worker_total"], rel=0.05, abs=0.05)


def test_a_request_answered_late_is_waited_for_not_counted_as_the_events_own_time(events):
    """Virtual time: the server answers the graph 30 ms after it was sent, meanwhile another
    event runs; the event's own edge_classifier time excludes both waits."""
    now = [10**12]
    server = FutureServer()
    services = service(server.backend(JET_TAGGER), server.backend(EDGE_CLASSIFIER))
    for s in services.values():
        s.now_ns = lambda: now[0]
    seq = HltSequence(CFG, MENU, services, now_ns=lambda: now[0])
    run = seq.run(1, events[1], start_ns=now[0], asynchronous=True)
    call = next(run)
    assert call.in_flight and not call.done()
    now[0] += 30 * clock.NS_PER_MS  # the server computes
    future, model, inputs = server.open.pop()
    future.set_result(LOCAL[model].infer(inputs))
    now[0] += 5 * clock.NS_PER_MS  # the worker finishes another event's step
    with pytest.raises(StopIteration) as stop:
        while True:
            call = run.send(None)
            future, model, inputs = server.open.pop()
            future.set_result(LOCAL[model].infer(inputs))
    r = stop.value.value
    assert r.steps_ms[EDGE_CLASSIFIER + WAIT_SUFFIX] == pytest.approx(30.0)
    assert r.steps_ms[SLOT_WAIT] == pytest.approx(5.0)
    assert r.steps_ms[EDGE_CLASSIFIER] == 0.0  # the fake clock did not move while this event ran
    assert r.steps_ms["worker_total"] == pytest.approx(35.0)
