"""The farm on one host through run control, the assignment service and a node agent (in a
thread of the test's process): every Level-1 accept decided once, the progress display fed,
a first SIGINT drains a run that would otherwise last a minute, and a builder or readout that
dies mid-run leaves every accept with its outcome; the readout's buffer on one host is what
the node holds."""

from __future__ import annotations

import os
import signal
import time

import pytest

from farm.one_host import one_host_buffer, run_farm
from trigger_sim.config import load_config, with_overrides

pytestmark = pytest.mark.timeout(120)


def small_farm():
    """One worker, every model in the worker (no Triton server): the shortest farm to start."""
    return with_overrides(load_config(), worker={"count": 1}, inference={"models": ()},
                          readout={"rate_hz": 60.0, "pattern": "constant"}, output={"write_streams": False})


def check_lost_0(summary: dict, n: int | None = None) -> None:
    ev = summary["events"]
    assert ev["l1_count_known"] and ev["lost"] == 0 and ev["duplicate_results_refused"] == 0, summary["problems"]
    assert ev["accepted"] + ev["rejected"] + ev["debug"] == ev["l1_accepted"]
    if n is not None:
        assert ev["l1_accepted"] == n


@pytest.mark.integration
def test_every_accept_is_decided_once_and_the_progress_display_is_fed():
    readings: list[dict] = []
    summary = run_farm(small_farm(), n_events=120, output_dir=None, events_table=None, progress=readings.append,
                           timeout_s=90)
    check_lost_0(summary, 120)
    assert summary["problems"] == [], summary["problems"]
    host = summary["hosts"]["localhost"]
    assert host["assigned"] == 120 and host["decided_by_workers"] + summary["events"]["debug"] >= 120
    assert readings and readings[-1]["decided"] == 120
    assert any(r["readout"].get("l1_accepted") for r in readings), "the readout's running counters never arrived"


@pytest.mark.integration
def test_a_first_sigint_drains_the_run():
    sent: list[int] = []

    def interrupt_once_running(reading: dict) -> None:
        if reading["decided"] >= 30 and not sent:
            sent.append(reading["decided"])
            os.kill(os.getpid(), signal.SIGINT)

    started = time.monotonic()
    summary = run_farm(small_farm(), duration_s=60.0, output_dir=None, events_table=None,
                           progress=interrupt_once_running, timeout_s=90)
    assert sent and time.monotonic() - started < 45, "the signal did not end the input"
    assert summary["interrupted_by"] == "SIGINT"
    check_lost_0(summary)
    assert summary["events"]["l1_accepted"] >= 30
    assert summary["problems"] == [], summary["problems"]


@pytest.mark.integration
@pytest.mark.parametrize("role", ["builder", "readout"])
def test_a_role_that_dies_mid_run_is_reported_and_every_accept_still_has_its_outcome(role):
    agents: list = []
    killed: list[int] = []

    def kill_once_running(reading: dict) -> None:
        if reading["decided"] >= 20 and not killed:
            process = getattr(agents[0].roles, role)
            killed.append(process.pid)
            process.kill()

    started = time.monotonic()
    summary = run_farm(small_farm(), duration_s=60.0, output_dir=None, events_table=None,
                           progress=kill_once_running, timeout_s=90, on_agent=agents.append)
    assert killed and time.monotonic() - started < 60
    assert any(f"{role} on localhost died" in p for p in summary["problems"]), summary["problems"]
    ev = summary["events"]
    assert ev["l1_count_known"] and ev["lost"] == 0 and ev["duplicate_results_refused"] == 0
    assert ev["accepted"] + ev["rejected"] + ev["debug"] == ev["l1_accepted"] >= 20


@pytest.mark.parametrize("workers, slots, max_waiting, configured, expected", [
    (2, 1, 64, 2048, 2 * 2 + 64),  # each worker: its event and one waiting at the builder
    (3, 4, 10, 2048, 3 * 5 + 10),
    (2, 1, 64, 20, 20),  # a smaller configured buffer stays
])
def test_the_one_host_readout_buffers_what_the_node_holds(workers, slots, max_waiting, configured, expected):
    config = with_overrides(load_config(), worker={"count": workers, "slots": slots}, builder={"max_waiting": max_waiting},
                            readout={"buffer_events": configured})
    assert one_host_buffer(config).readout.buffer_events == expected


@pytest.mark.integration
def test_an_agent_thread_that_outlives_the_run_is_reported_and_its_socket_not_closed_under_it(monkeypatch):
    """Closing a ZeroMQ socket from another thread than the one using it is unsafe (and the
    context's term would block): a node agent still running after the join's timeout keeps
    its socket, the run ends and says so."""
    import threading

    import farm.one_host
    from farm.node_agent import NodeAgent

    monkeypatch.setattr(farm.one_host, "AGENT_JOIN_S", 0.2)
    release = threading.Event()
    real_run = NodeAgent.run
    agents: list[NodeAgent] = []

    def run_then_linger(self) -> None:
        real_run(self)
        release.wait(30)  # still in the agent's thread after run control's EXIT

    monkeypatch.setattr(NodeAgent, "run", run_then_linger)
    try:
        summary = run_farm(small_farm(), n_events=30, output_dir=None, events_table=None, timeout_s=90,
                           on_agent=agents.append)
        check_lost_0(summary, 30)
        assert any("did not end within 0.2 s" in p for p in summary["problems"]), summary["problems"]
        assert not agents[0].control.closed and not agents[0].ctx.closed
    finally:  # whatever failed: a context left open would block the garbage collector's term() later
        release.set()
        for thread in threading.enumerate():
            if thread.name == "node-agent":
                thread.join(10)
        if agents and not agents[0].ctx.closed:
            agents[0].control.close(linger=0)
            agents[0].ctx.term()
