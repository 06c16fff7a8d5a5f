"""Tests of farm.procfs: a process's peak resident memory, read from /proc."""

from __future__ import annotations

import subprocess
import sys

from farm.procfs import peak_rss_mb

CHILD = """
from farm.procfs import peak_rss_mb
before = peak_rss_mb()
block = bytearray(128 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1  # touch every page
print(before, peak_rss_mb())
"""


def test_peak_grows_with_memory_touched_and_a_gone_process_gives_none():
    """In a fresh process (this one's peak may already be far above any new block)."""
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True).stdout
    before, after = map(float, out.split())
    assert after - before > 100
    assert peak_rss_mb() is not None
    assert peak_rss_mb(2**22 + 12345) is None


def test_a_sessions_cpu_counts_its_processes_and_not_others():
    """A child in a session of its own burns about 0.3 s of CPU in two processes (itself and
    a grandchild), then sleeps: the session's CPU is about that, not this process's."""
    import subprocess
    import sys
    import time

    from farm.procfs import session_cpu_s

    burn = "import time\nt=time.process_time()\nwhile time.process_time()-t<0.15: pass\n"
    code = ("import subprocess, sys, time\n"
            f"p = subprocess.Popen([sys.executable, '-c', {burn + 'time.sleep(30)'!r}])\n"
            f"exec({burn!r})\n"
            "time.sleep(30)\n")
    child = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while session_cpu_s(child.pid) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu = session_cpu_s(child.pid)
        assert 0.3 <= cpu < 1.5
    finally:
        import os
        import signal
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
