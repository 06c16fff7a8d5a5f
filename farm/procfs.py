"""What Linux's /proc says about a process: its peak resident memory."""

from __future__ import annotations


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
