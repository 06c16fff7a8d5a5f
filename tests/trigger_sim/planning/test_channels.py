"""A worker's gRPC channel to a server that died: gRPC's connection backoff, in the model."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.planning.channels import Backoff, Channel


def attempts_until_connected(backoff: Backoff, lost_ms: float, up_ms: float, seed: int = 1, step_ms: float = 7.0):
    """Poll the channel every `step_ms` from its loss until it connects; returns it and the poll time."""
    c = Channel(backoff, np.random.default_rng(seed))
    c.lost(lost_ms)
    now = lost_ms
    while not c.usable(now, up_ms if now >= up_ms else None):
        now += step_ms
        assert now < lost_ms + 1e7, "never connected"
    return c, now


@settings(max_examples=200, deadline=None)
@given(lost_ms=st.floats(0, 1e4), down_ms=st.floats(0, 2e4), jitter=st.floats(0, 0.5), seed=st.integers(0, 1000))
def test_the_channel_connects_at_the_first_attempt_after_the_server_is_up(lost_ms, down_ms, jitter, seed):
    """Attempts are spaced by the backoff (x1.6 each, within +-jitter), and the first one at
    or after the server came up connects; none before it."""
    backoff = Backoff(initial_ms=1000.0, multiplier=1.6, jitter=jitter, max_ms=5000.0)
    up_ms = lost_ms + down_ms
    c, polled = attempts_until_connected(backoff, lost_ms, up_ms, seed)
    back = c.reconnected_ms[0]
    assert back >= up_ms and back <= polled
    # replay the schedule the same generator draws: every attempt before `back` was before `up_ms`
    rng, t, wait = np.random.default_rng(seed), lost_ms, 1000.0
    times = []
    for _ in range(c.attempts):
        t += wait * (1 + jitter * (2 * rng.random() - 1)) if jitter > 0 else wait
        times.append(t)
        wait = min(wait * 1.6, 5000.0)
    assert times[-1] == back
    assert all(x < up_ms for x in times[:-1])
    gaps = np.diff([lost_ms, *times])
    caps = [min(1000.0 * 1.6 ** k, 5000.0) for k in range(len(gaps))]
    assert all(cap * (1 - jitter) - 1e-6 <= g <= cap * (1 + jitter) + 1e-6 for g, cap in zip(gaps, caps))


def test_grpc_defaults_rejoin_a_server_restarted_in_3_s_after_5_s_not_3():
    """1 s, then 1.6 s, then 2.56 s (no jitter): attempts at 1, 2.6 and 5.16 s after the loss."""
    c, _ = attempts_until_connected(Backoff(jitter=0.0), 0.0, 3000.0)
    assert c.reconnected_ms == [5160.0] and c.attempts == 3


def test_without_backoff_the_channel_is_usable_the_moment_the_server_is_up():
    c = Channel(Backoff(initial_ms=0.0), np.random.default_rng(1))
    c.lost(0.0)
    assert c.connected and c.usable(10.0, 5.0)


def test_a_lost_channel_keeps_its_schedule_when_calls_fail_again():
    c = Channel(Backoff(jitter=0.0), np.random.default_rng(1))
    c.lost(0.0)
    c.lost(500.0)  # another call failed meanwhile: the first attempt is still due at 1 s
    assert c.next_attempt_ms == 1000.0
    assert not c.usable(999.0, 0.0) and c.usable(1000.0, 0.0)
