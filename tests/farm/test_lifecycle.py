"""farm.lifecycle: how servers are launched (own session, dying with the thread that started
them, no Python code between fork and exec)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from farm.lifecycle import server_launch

_forks: list[int] = []
os.register_at_fork(before=lambda: _forks.append(1))  # counts forks that run Python's fork handlers


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed: servers use preexec_fn")
def test_a_server_is_launched_without_fork_handlers_in_its_own_session_and_dies_with_its_thread():
    """No fork handler runs (gRPC's blocked a fork for good in a test run), the server leads
    its own session, and it gets SIGTERM when the thread that launched it ends."""
    argv, how = server_launch(["sleep", "60"])
    assert "preexec_fn" not in how
    procs: list[subprocess.Popen] = []
    before = len(_forks)
    def launch() -> None:
        procs.append(subprocess.Popen(argv, **how))
        time.sleep(0.5)  # a launching thread lives on (setpriv sets the signal once it runs)

    thread = threading.Thread(target=launch)
    thread.start()
    thread.join()
    proc = procs[0]
    try:
        assert len(_forks) == before
        assert proc.wait(timeout=10) == -15  # SIGTERM: its launching thread has ended
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_server_leads_its_own_session():
    argv, how = server_launch(["sleep", "60"])
    proc = subprocess.Popen(argv, **how)
    try:
        assert os.getsid(proc.pid) == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_sigusr1_prints_every_threads_stack_and_the_process_goes_on():
    code = ("import sys, threading, time\n"
            "from farm.lifecycle import stacks_on_request\n"
            "stacks_on_request()\n"
            "def waiting_in_a_thread():\n"
            "    time.sleep(30)\n"
            "threading.Thread(target=waiting_in_a_thread, daemon=True).start()\n"
            "print('ready', flush=True)\n"
            "sys.stdin.readline()\n"
            "print('still running', flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        out, err = proc.communicate("go\n", timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert out == "still running\n"
    assert "waiting_in_a_thread" in err and "Current thread" in err
