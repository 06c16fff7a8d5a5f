"""The host's cores in the model: whole bursts, round-robin slices, CFS-like fair slices, and
a restarting server's CPU."""

import pytest
import simpy

from trigger_sim.planning.cores import Cores, CpuUser
from trigger_sim.planning.servers import kill_schedule


def _finish_times(cores: Cores, bursts: list[tuple[float, float, CpuUser | None]]) -> list[float]:
    """Each (start ms, CPU ms, user) burst's end on `cores`."""
    env, ends = cores.env, [0.0] * len(bursts)

    def one(k, start, ms, user):
        yield env.timeout(start)
        yield from cores.run(user, ms)
        ends[k] = env.now

    for k, (start, ms, user) in enumerate(bursts):
        env.process(one(k, start, ms, user))
    env.run()
    return ends


def test_whole_bursts_make_a_short_burst_wait_for_a_long_one():
    env = simpy.Environment()
    assert _finish_times(Cores(env, 1), [(0.0, 10.0, None), (0.5, 1.0, None)]) == [10.0, 11.0]


def test_slices_let_a_short_burst_through_at_the_next_slice():
    """1 ms slices on one core: the short burst waits for the long one's slice to end, not its
    whole burst (it ends at 2 ms, not 11); the CPU work is the same (the last ends at 11)."""
    env = simpy.Environment()
    ends = _finish_times(Cores(env, 1, slice_ms=1.0), [(0.0, 10.0, None), (0.5, 1.0, None)])
    assert ends == pytest.approx([11.0, 2.0])


def test_slices_cost_nothing_without_a_waiter():
    env = simpy.Environment()
    assert _finish_times(Cores(env, 2, slice_ms=1.0), [(0.0, 10.0, None), (0.0, 7.0, None)]) == pytest.approx([10.0, 7.0])


def test_fair_slices_give_the_core_to_the_least_run_user():
    """Round robin alternates two long bursts with a third user's; fair slices first serve the
    user that has used no CPU: a burst from a user that used 20 ms already waits behind a newcomer."""
    env = simpy.Environment()
    cores = Cores(env, 1, slice_ms=1.0, fair=True, wake_bonus_ms=1e9)
    heavy, light = CpuUser(), CpuUser()
    heavy.vruntime_ms = 20.0
    # heavy starts first and holds the core; light arrives; at heavy's first slice end light runs to its end
    ends = _finish_times(cores, [(0.0, 5.0, heavy), (0.2, 3.0, light)])
    assert ends[1] == pytest.approx(4.0)  # 1 ms of heavy, then light's 3 ms whole (it stays the least run)
    assert ends[0] == pytest.approx(8.0)


def test_a_sleeper_gets_no_more_credit_than_the_wake_bonus():
    env = simpy.Environment()
    cores = Cores(env, 1, slice_ms=1.0, fair=True, wake_bonus_ms=2.0)
    cores.min_vruntime_ms = 50.0
    sleeper = CpuUser()
    _finish_times(cores, [(0.0, 1.0, sleeper)])
    assert sleeper.vruntime_ms == pytest.approx(49.0)  # woke at 50 - 2, then ran 1 ms


class _Server:
    def __init__(self):
        self.events = []
        self.restarts_ms = []

    def kill(self):
        self.events.append("kill")

    def restart(self):
        self.events.append("restart")


def test_a_restart_takes_its_cpu_on_the_host_cores_and_delays_other_work():
    """A restart of 1 s with 1 core of CPU on a 1-core host: a 10 ms burst arriving during it
    shares the core (ends well after 10 ms) ; without restart CPU it runs at once."""
    for restart_cores, slower in ((1.0, True), (0.0, False)):
        env = simpy.Environment()
        cores = Cores(env, 1, slice_ms=1.0)
        server = _Server()
        env.process(kill_schedule(env, server, 0.0, 1.0, cores, restart_cores))
        end = []

        def work():
            yield env.timeout(100.0)
            yield from cores.run(CpuUser(), 10.0)
            end.append(env.now - 100.0)

        env.process(work())
        env.run()
        assert server.events == ["kill", "restart"]
        assert (end[0] > 15.0) is slower
        assert end[0] >= 10.0


def _contended_restart(cpu_s: float, processes: int, alone_s: float, busy_users: int) -> float:
    """The restart's length (ms) on a 2-core host where `busy_users` processes always want CPU."""
    env = simpy.Environment()
    cores = Cores(env, 2, slice_ms=3.0, fair=True)
    server = _Server()

    def busy(user):
        while True:
            yield from cores.run(user, 3.0)

    for _ in range(busy_users):
        env.process(busy(CpuUser()))
    env.process(kill_schedule(env, server, 0.0, alone_s, cores, restart_cpu_s=cpu_s, restart_processes=processes))
    env.run(until=60_000.0)
    assert server.events == ["kill", "restart"]
    return server.restarts_ms[0]


def test_a_contended_restart_takes_its_cpu_as_the_cores_allow_and_lasts_longer_on_a_busy_host():
    """3 processes sharing 1.2 CPU s: alone on 2 cores 0.6 s of CPU work, so the start's own
    0.85 s bounds it; beside 3 always-busy processes each of the 6 gets a third of a core:
    0.4 CPU s each takes about 1.2 s; beside 9, each gets a sixth: about 2.4 s."""
    assert _contended_restart(1.2, 3, 0.85, 0) == pytest.approx(850.0)
    assert _contended_restart(1.2, 3, 0.85, 3) == pytest.approx(1200.0, rel=0.05)
    assert _contended_restart(1.2, 3, 0.85, 9) == pytest.approx(2400.0, rel=0.05)
