"""Tests of trigger_sim.run_states: the run-control state machine."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.run_states import (CONFIGURED, ERROR, EXITED, INITIAL, RUNNING, STATES, STOPPED, TRANSITIONS, RunState,
                                    TransitionError, all_in, allowed)

COMMANDS = sorted({cmd for _, cmd in TRANSITIONS})


def test_a_run_goes_through_configured_running_stopped_and_again():
    s = RunState("node1")
    for cmd, want in (("configure", CONFIGURED), ("start", RUNNING), ("stop", STOPPED), ("configure", CONFIGURED),
                      ("start", RUNNING), ("stop", STOPPED), ("exit", EXITED)):
        assert s.apply(cmd) == want
    assert s.history == [INITIAL, CONFIGURED, RUNNING, STOPPED, CONFIGURED, RUNNING, STOPPED, EXITED]


def test_refused_transition_names_the_state_and_what_is_allowed():
    s = RunState("readout")
    with pytest.raises(TransitionError, match=r"readout: 'start' is not allowed in state INITIAL \(allowed: configure, exit, fail\)"):
        s.apply("start")
    assert s.state == INITIAL


def test_a_failure_keeps_its_reason_and_needs_a_reset():
    s = RunState("node2", RUNNING)
    s.apply("fail", "heartbeat silent 3 s")
    assert s.state == ERROR and s.error == "heartbeat silent 3 s"
    with pytest.raises(TransitionError):
        s.apply("start")
    assert s.apply("reset") == INITIAL


def test_all_in():
    roles = [RunState("a", CONFIGURED), RunState("b", CONFIGURED)]
    assert all_in(roles, CONFIGURED)
    roles[1].apply("start")
    assert not all_in(roles, CONFIGURED)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(COMMANDS), max_size=30))
def test_any_command_sequence_stays_in_the_table(commands):
    s = RunState("x")
    for cmd in commands:
        before = s.state
        if cmd in allowed(before):
            assert s.apply(cmd) == TRANSITIONS[(before, cmd)]
        else:
            with pytest.raises(TransitionError):
                s.apply(cmd)
            assert s.state == before
        assert s.state in STATES
    assert s.history[-1] == s.state
    assert not allowed(EXITED)  # exited is final
