"""What Linux's /proc says about processes: a process's peak resident memory, a session's CPU."""

from __future__ import annotations

import os
from pathlib import Path


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """The process's own peak resident memory (VmHWM, since it started or exec'd), or None
    when it is gone. ru_maxrss is no substitute: across the fork and exec of a spawned
    process it keeps the parent's peak."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def session_cpu_s(sid: int) -> float:
    """CPU seconds (user + system) of the live processes of session `sid` (a tritonserver and
    its backend stubs: the server is started in a session of its own, its pid the session's)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # fields after the name: state ppid pgrp session ... utime(12) stime(13)
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total
