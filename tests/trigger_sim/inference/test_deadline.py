"""Tests of trigger_sim.inference.deadline: the one "time left" rule of the inference path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trigger_sim.errors import InferenceTimeout
from trigger_sim.inference.deadline import left_s, require_left_s

times_ns = st.integers(0, 2**62)


@given(times_ns, times_ns)
def test_time_left_is_positive_exactly_before_the_deadline(deadline_ns, now_ns):
    left = left_s(deadline_ns, now_ns)
    assert (left > 0) == (now_ns < deadline_ns)
    assert left == pytest.approx((deadline_ns - now_ns) / 1e9)
    if now_ns < deadline_ns:
        assert require_left_s(deadline_ns, now_ns, "call") == left
    else:
        with pytest.raises(InferenceTimeout, match="^call: no time left"):
            require_left_s(deadline_ns, now_ns, "call")
