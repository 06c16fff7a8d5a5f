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
