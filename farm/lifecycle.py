"""Process lifecycle helpers: children die with their parent, never linger."""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send `sig` to this process when its parent dies (no-op elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def stacks_on_request(sig: int = signal.SIGUSR1) -> None:
    """`kill -USR1 PID` prints every thread's Python stack to stderr, for a farm process that
    seems stuck; a fatal error (a crash in compiled code) prints them too, before it ends."""
    faulthandler.enable(all_threads=True)
    faulthandler.register(sig, all_threads=True)


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def child_pids(pid: int, zombies: bool = True) -> list[int]:
    """The processes whose parent is `pid`, from /proc (empty where there is none); without
    those that have exited and wait to be reaped unless `zombies`."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            after_name = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(after_name[1]) == pid and (zombies or after_name[0] != "Z"):  # after the name: state, ppid, ...
            out.append(int(stat.parent.name))
    return out


@contextlib.contextmanager
def reaping_orphans(pids: list[int], timeout_s: float = 5.0) -> Iterator[None]:
    """Within the block this process is a child subreaper: descendants orphaned meanwhile
    (a server's helpers it did not wait for) become its children. After the block, `pids`
    are waited for (up to `timeout_s`), so their CPU time is counted in this process's
    children's resource usage, as when their own parent reaped them, and none is left a
    zombie. Elsewhere than Linux the block runs as it is."""
    subreaper = _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    try:
        yield
    finally:
        deadline = time.monotonic() + timeout_s
        waiting = list(pids) if subreaper else []
        while waiting and time.monotonic() < deadline:
            for pid in list(waiting):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:  # reaped by its own parent, or not ours
                    done = pid
                if done:
                    waiting.remove(pid)
            if waiting:
                time.sleep(0.01)
        if subreaper:
            _prctl(_PR_SET_CHILD_SUBREAPER, 0)


def new_session_dying_with_parent() -> None:
    """`preexec_fn` for servers: own process group (clean group kill), die with the parent."""
    os.setsid()
    die_with_parent(signal.SIGTERM)


def server_launch(cmd: list[str]) -> tuple[list[str], dict[str, Any]]:
    """A server's command line and `subprocess.Popen` keywords: its own session (a clean group
    kill) and SIGTERM when the thread that started it ends. With util-linux's `setpriv` the
    death signal is set by `setpriv --pdeathsig`, so no Python code runs between fork and exec
    and Popen uses vfork, which runs no fork handlers: gRPC's (a test process with live gRPC
    channels) blocked a plain fork for good in a test run (2026-12-06, inside fork() in
    gRPC's prepare handler, where no timeout reaches; grpc/grpc#37259). `setpriv` sets the signal once it runs,
    a few milliseconds after the launch: a thread that ends sooner leaves the server running
    (launching threads here live as long as their servers). Without `setpriv`: `preexec_fn`."""
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, "--pdeathsig", "TERM", "--", *cmd], {"start_new_session": True}
    return list(cmd), {"preexec_fn": new_session_dying_with_parent}


def ignore_interrupts() -> None:
    """Children ignore Ctrl-C (sent to the whole terminal process group): run control
    alone decides how the farm stops, so in-flight events are drained, not dropped."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
