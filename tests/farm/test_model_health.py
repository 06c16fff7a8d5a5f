"""Tests of farm.model_health: when the model monitor reloads a model (pure logic)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from farm.model_health import (
    MIN_PROBE_TIMEOUT_S,
    STRIKES_TO_RELOAD,
    ModelHealth,
    Probe,
    StatsSnapshot,
    stats_snapshot,
)

DEAD_STUB = "[StatusCode.INTERNAL] Failed to process the request(s) for model 'edge_classifier', message: Stub process 'edge_classifier_0_0' is not healthy."


def timeout(health: ModelHealth) -> Probe:
    limit = health.probe_timeout_s()
    return Probe(False, limit, limit, timed_out=True, error="no answer")


def test_triton_statistics_json_is_read_as_completed_requests_and_their_busy_time():
    stats = {"success": {"count": "12", "ns": "9000"}, "fail": {"count": "3", "ns": "5"}, "queue": {"count": "12", "ns": "400"},
             "compute_input": {"count": "12", "ns": "10"}, "compute_infer": {"count": "12", "ns": "5000"},
             "compute_output": {"count": "12", "ns": "20"}, "cache_hit": {}}
    assert stats_snapshot(stats) == StatsSnapshot(12, 5430)
    assert stats_snapshot({}) == StatsSnapshot(0, 0)  # a model never called: zero fields are omitted


def test_a_model_under_load_whose_probes_time_out_is_not_reloaded_while_it_completes_requests():
    """Pile-up 200: a graph takes ~1 s of server time and requests queue; the tiny probe waits
    behind them and times out, round after round, but the model keeps completing requests."""
    health = ModelHealth()
    health.decide(Probe(True, 1.0, 0.002), StatsSnapshot(100, 100 * 2_000_000), True)
    done, busy_ns = 100, 100 * 2_000_000
    for _ in range(20):
        done, busy_ns = done + 2, busy_ns + 2 * 1_500_000_000  # two graphs per round, 1.5 s each in queue + compute
        decision = health.decide(timeout(health), StatsSnapshot(done, busy_ns), True)
        assert not decision.reload, decision.reason
    assert health.latency_s == 1.5 and health.probe_timeout_s() == 15.0  # the next probe waits far longer


def test_a_timeout_not_far_beyond_the_current_latency_is_not_held_against_the_model():
    health = ModelHealth()
    health.decide(Probe(True, 1.0, 0.8), None, True)  # the last probe took 0.8 s
    for _ in range(5):
        decision = health.decide(Probe(False, 1.0, 1.0, timed_out=True, error="no answer"), None, True)
        assert not decision.reload and "not far beyond" in decision.reason


def test_a_hung_model_is_reloaded_after_the_strikes_and_only_then():
    health = ModelHealth()
    health.decide(Probe(True, 1.0, 0.003), StatsSnapshot(50, 50 * 3_000_000), True)
    decisions = [health.decide(timeout(health), StatsSnapshot(50, 50 * 3_000_000), True) for _ in range(STRIKES_TO_RELOAD)]
    assert [d.reload for d in decisions] == [False] * (STRIKES_TO_RELOAD - 1) + [True]
    assert "nothing completed" in decisions[-1].reason
    assert health.strikes == 0  # a fresh start after the reload


def test_a_dead_stub_is_reloaded_at_once_and_a_dead_server_never():
    health = ModelHealth()
    assert health.decide(Probe(False, 1.0, 0.01, error=DEAD_STUB), None, True).reload
    for _ in range(5):
        assert not health.decide(timeout(health), None, server_live=False).reload


def test_probe_timeout_stays_within_its_bounds():
    health = ModelHealth()
    assert health.probe_timeout_s() == MIN_PROBE_TIMEOUT_S
    health.decide(Probe(True, 1.0, 100.0), None, True)
    assert health.probe_timeout_s() == health.max_timeout_s


rounds = st.lists(st.tuples(st.booleans(), st.integers(0, 5), st.floats(0.0, 3.0), st.booleans(), st.booleans()),
                  min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(rounds)
def test_only_a_dead_stub_or_repeated_suspicious_rounds_reload(steps):
    """Property: a round where the server is not live, the model completed requests, or the
    probe answered never reloads; a reload without a dead stub needs STRIKES_TO_RELOAD rounds
    in a row in which the model completed nothing."""
    health = ModelHealth()
    done, busy_ns = 0, 0
    idle_rounds = 0  # rounds in a row that counted against the model
    for answered, completed, latency_s, live, stub in steps:
        done, busy_ns = done + completed, busy_ns + int(completed * latency_s * 1e9)
        limit = health.probe_timeout_s()
        if answered:
            probe = Probe(True, limit, min(latency_s, limit))
        else:
            probe = Probe(False, limit, limit, timed_out=not stub, error=DEAD_STUB if stub else "no answer")
        had_stats = health._last is not None
        decision = health.decide(probe, StatsSnapshot(done, busy_ns), live)
        if not answered and stub:
            assert decision.reload
            idle_rounds = 0
            continue
        if answered or not live or (completed and had_stats):
            assert not decision.reload
            idle_rounds = 0
            continue
        idle_rounds += 1
        if decision.reload:
            assert idle_rounds >= STRIKES_TO_RELOAD
            idle_rounds = 0
        assert MIN_PROBE_TIMEOUT_S <= health.probe_timeout_s() <= health.max_timeout_s
