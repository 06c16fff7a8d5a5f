"""Tests of trigger_sim.inference.server_pool: choosing a server, health, rejoining."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, precondition

from trigger_sim.inference.server_pool import ServerPool

OPEN_NS = 1_000
ADDRESSES = ["a:1", "b:2", "c:3"]


def pool(n: int = 3, models=("m",), threshold: int = 1) -> ServerPool:
    p = ServerPool(ADDRESSES[:n], threshold, OPEN_NS)
    for a in ADDRESSES[:n]:
        p.set_models(a, models)
    return p


def test_idle_pool_spreads_calls_round_robin():
    p = pool()
    picks = []
    for _ in range(6):
        a = p.choose("m")
        p.begin(a)
        p.finish(a, True, 1_000_000, 0)
        picks.append(a)
    assert picks == ADDRESSES * 2


def test_least_outstanding_wins():
    p = pool()
    p.begin("a:1")
    p.begin("a:1")
    p.begin("b:2")
    assert p.choose("m") == "c:3"


def test_model_not_served_is_never_chosen():
    p = ServerPool(["a:1", "b:2"], 1, OPEN_NS)
    p.set_models("a:1", ["other"])
    p.set_models("b:2", ["m", "other"])
    assert {p.choose("m") for _ in range(4)} == {"b:2"}
    assert p.choose("missing") is None


def test_failed_server_leaves_and_rejoins_after_a_successful_probe():
    p = pool(2)
    p.begin("a:1")
    p.finish("a:1", False, 0, 10)
    assert {p.choose("m") for _ in range(3)} == {"b:2"}
    assert p.due_probes(10 + OPEN_NS - 1) == []
    assert p.due_probes(10 + OPEN_NS) == ["a:1"]
    assert p.due_probes(10 + OPEN_NS) == []  # one probe at a time
    p.probe_done("a:1", False, 10 + OPEN_NS)
    assert p.choose("m", exclude={"b:2"}) is None
    assert p.due_probes(10 + 2 * OPEN_NS) == ["a:1"]
    p.probe_done("a:1", True, 10 + 2 * OPEN_NS, ["m"])
    assert p.choose("m", exclude={"b:2"}) == "a:1"
    assert p.counters()["a:1"]["rejoined"] == 1


def test_server_never_reached_is_out_until_probed():
    p = ServerPool(["a:1"], 3, OPEN_NS)
    p.mark_down("a:1", 0)
    assert p.choose("m") is None
    assert p.due_probes(OPEN_NS) == ["a:1"]
    p.probe_done("a:1", True, OPEN_NS, ["m"])
    assert p.choose("m") == "a:1"


def test_counters_and_latency():
    p = pool(1)
    p.begin("a:1")
    p.finish("a:1", True, 2_000_000, 0)
    p.begin("a:1")
    p.finish("a:1", False, 0, 0)
    c = p.counters()["a:1"]
    assert (c["calls"], c["failures"]) == (2, 1)
    assert sum(n for _, n in c["latency_buckets"]) == 1


class PoolMachine(RuleBasedStateMachine):
    """Random calls, failures, probes and model sets: the pool's invariants hold throughout."""

    def __init__(self):
        super().__init__()
        self.pool = ServerPool(ADDRESSES, 2, OPEN_NS)
        self.now = 0
        self.in_flight: list[str] = []
        self.tried: set[str] = set()  # the current call's failed servers

    @rule(models=st.lists(st.sampled_from(["m", "n"]), unique=True), index=st.integers(0, 2))
    def set_models(self, models, index):
        self.pool.set_models(ADDRESSES[index], models)

    @rule(model=st.sampled_from(["m", "n"]))
    def choose_and_send(self, model):
        a = self.pool.choose(model, self.tried)
        healthy_with_model = [s.address for s in self.pool.servers.values()
                              if s.healthy and model in s.models and s.address not in self.tried]
        if a is None:
            assert healthy_with_model == []
            self.tried.clear()  # the chain ends: the caller falls back
            return
        assert a in healthy_with_model and a not in self.tried
        least = min(self.pool.servers[h].outstanding for h in healthy_with_model)
        assert self.pool.servers[a].outstanding == least
        self.pool.begin(a)
        self.in_flight.append(a)

    @precondition(lambda self: self.in_flight)
    @rule(ok=st.booleans(), which=st.integers(0, 100))
    def answer(self, ok, which):
        a = self.in_flight.pop(which % len(self.in_flight))
        self.pool.finish(a, ok, 1_000, self.now)
        if ok:
            self.tried.clear()
        else:
            self.tried.add(a)

    @rule(dt=st.integers(0, 2 * OPEN_NS))
    def time_passes(self, dt):
        self.now += dt

    @rule(ok=st.booleans())
    def probe(self, ok):
        for a in self.pool.due_probes(self.now):
            self.pool.probe_done(a, ok, self.now, ["m", "n"])

    @invariant()
    def outstanding_matches_in_flight(self):
        for a, s in self.pool.servers.items():
            assert s.outstanding == self.in_flight.count(a) >= 0

    def teardown(self):
        while self.in_flight:
            self.pool.finish(self.in_flight.pop(), True, 0, self.now)
        assert all(s.outstanding == 0 for s in self.pool.servers.values())


TestPoolMachine = PoolMachine.TestCase
TestPoolMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_round_robin_is_per_model():
    """An event calls the GNN then the tagger: each model's calls alternate between servers."""
    p = pool(2, models=("gnn", "tagger"))
    picks = {"gnn": [], "tagger": []}
    for _ in range(4):
        for model in ("gnn", "tagger"):
            picks[model].append(p.choose(model))
    assert picks["gnn"] == picks["tagger"] == ["a:1", "b:2"] * 2
