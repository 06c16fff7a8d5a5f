"""Tests of farm.procfs: a process's peak resident memory, read from /proc."""

from __future__ import annotations

import os

import numpy as np

from farm.procfs import peak_rss_mb


def test_peak_grows_with_memory_touched_and_a_gone_process_gives_none():
    before = peak_rss_mb()
    block = np.ones(64 * 1024 * 1024 // 8)  # 64 MiB, every page touched
    after = peak_rss_mb(os.getpid())
    assert before is not None and after is not None and after - before > 50
    del block
    assert peak_rss_mb(2**22 + 12345) is None
