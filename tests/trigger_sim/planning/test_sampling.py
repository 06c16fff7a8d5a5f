import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from trigger_sim.planning.sampling import draw
from trigger_sim.planning.servers import LeastOutstanding

from .synthetic import calibration


def test_block_draws_take_consecutive_rows():
    cal = calibration(rows=40)
    rows = draw(cal, 23, np.random.default_rng(1), block_events=5).row
    assert len(rows) == 23
    for block in range(0, 20, 5):
        assert np.all(np.diff(rows[block:block + 5]) % 40 == 1)


def test_independent_draws_cover_the_table():
    rows = draw(calibration(rows=10), 2000, np.random.default_rng(1)).row
    assert set(rows) == set(range(10))


@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), max_size=60))
def test_least_outstanding_lists_servers_from_the_least_loaded(moves):
    pool, counts = LeastOutstanding(5), [0] * 5
    for index, up in moves:
        if not up and counts[index] == 0:
            continue
        new = counts[index] + (1 if up else -1)
        pool.moved(index, counts[index], new)
        counts[index] = new
    order = list(pool.in_order())
    assert sorted(order) == list(range(5))
    assert [counts[i] for i in order] == sorted(counts)
