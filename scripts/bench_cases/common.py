"""Shared helpers of the benchmark suite: repetition statistics, per-process CPU time, the machine.

Every figure the suite reports is a `stats(samples)` dict: the median, min, max and number
of repetitions (the samples themselves are kept in the JSON too), so a reader sees the spread
as well as the typical value.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def stats(samples: list[float], unit: str) -> dict[str, Any]:
    """Median, min, max and count of repeated measurements (n >= 1)."""
    values = [float(v) for v in samples]
    if not values:
        raise ValueError("no samples")
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values),
            "unit": unit, "samples": values}


def fmt(s: dict[str, Any], digits: int = 3) -> str:
    """'median [min–max]' with `digits` significant digits (one value when n == 1)."""
    def g(v: float) -> str:
        return f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:,.0f}"
    if s["n"] == 1:
        return g(s["median"])
    return f"{g(s['median'])} [{g(s['min'])}–{g(s['max'])}]"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (linear interpolation, as numpy's default)."""
    data = sorted(values)
    if not data:
        raise ValueError("no values")
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


@dataclass
class Target:
    """A target of the issue: `measured` compared with `limit` ('>=' or '<=')."""

    name: str
    measured: float
    op: str
    limit: float
    note: str = ""

    @property
    def met(self) -> bool:
        return self.measured >= self.limit if self.op == ">=" else self.measured <= self.limit

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "measured": self.measured, "target": f"{self.op} {self.limit:g}", "met": self.met,
                "note": self.note}


@dataclass
class CaseResult:
    """What one case hands to the report: figures, targets, and what it found out about its limits."""

    name: str
    title: str
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> stats(...)
    targets: list[Target] = field(default_factory=list)
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)  # (header, rows) for the report
    notes: list[str] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)  # for a target not met: what limits it, from the measurements
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "metrics": self.metrics, "targets": [t.to_json() for t in self.targets],
                "notes": self.notes, "limits": self.limits, "diagnostics": self.diagnostics}


# -- CPU time and memory of processes (Linux /proc) -------------------------------------------
Task = int | tuple[int, int]  # a process id, or (process id, thread id) for one thread


def cpu_s(task: Task) -> float | None:
    """User + system CPU seconds of a process (all its threads) or of one thread; None if gone."""
    path = f"/proc/{task}/stat" if isinstance(task, int) else f"/proc/{task[0]}/task/{task[1]}/stat"
    try:
        with open(path, "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    # after "pid (comm)": state is field 3, utime 14, stime 15 (1-based) -> 11, 12 here
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu_s() -> tuple[float, float]:
    """CPU seconds the whole machine has been busy (all processes, all cores), and stolen by the
    hypervisor, since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def own_cpu_s() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


class LoadMeter:
    """How many cores other processes on the machine used while a case ran (noise indicator):
    machine-wide busy CPU minus this process tree's, over the wall time. Call `stop` after the
    case's child processes have exited (they are counted once waited for)."""

    def __init__(self) -> None:
        self.t0, self.busy0, self.steal0 = time.monotonic(), *machine_cpu_s()
        self.own0 = own_cpu_s()

    def stop(self) -> dict[str, float]:
        seconds = max(time.monotonic() - self.t0, 1e-9)
        busy, steal = machine_cpu_s()
        other = (busy - self.busy0) - (own_cpu_s() - self.own0)
        return {"seconds": seconds, "other_cores": max(other, 0.0) / seconds, "steal_cores": (steal - self.steal0) / seconds}


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class CpuMeter:
    """CPU seconds used by named groups of processes (or threads) between `start()` and the last
    `sample()`. A process that exits keeps its last sampled value, so sample often enough."""

    def __init__(self, groups: dict[str, list[Task]]):
        self.groups = groups
        self.first: dict[Task, float] = {}
        self.last: dict[Task, float] = {}

    def start(self) -> "CpuMeter":
        for tasks in self.groups.values():
            for task in tasks:
                value = cpu_s(task)
                if value is not None:
                    self.first[task] = self.last[task] = value
        return self

    def sample(self) -> None:
        for task in self.first:
            value = cpu_s(task)
            if value is not None:
                self.last[task] = value

    def used_s(self) -> dict[str, float]:
        return {name: sum(self.last.get(t, 0.0) - self.first.get(t, 0.0) for t in tasks)
                for name, tasks in self.groups.items()}


# -- the machine ------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """Cores, CPU model, memory, GPU (or none), OS and Python: the header of BENCHMARKS.md."""
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 2**20
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return {"cores": cores, "cpu_model": cpu_model, "memory_gib": round(mem_gib, 1), "gpu": gpu_name(),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version()}


def gpu_name() -> str:
    """The NVIDIA GPU's name, or '' when there is none (the suite never uses one)."""
    if shutil.which("nvidia-smi") is None:
        return ""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""


def log(message: str) -> None:
    """Progress on stderr (the report goes to files)."""
    print(message, file=sys.stderr, flush=True)
