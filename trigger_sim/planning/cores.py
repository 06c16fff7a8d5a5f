"""A host's cores in the model (SimPy): CPU bursts taken whole, in round-robin time slices,
or in slices handed out fairly as the Linux scheduler (CFS) does.

- whole (`slice_ms` 0): a burst holds its core to the end, first come first served;
- slices (`slice_ms` > 0): after each slice a burst gives its core up if another one waits
  and queues again behind it (processor sharing at the slice's granularity): a short burst
  is not held up for the whole of a long one;
- fair (`fair`, with slices): every CPU user (a worker, a server's model instance, the farm's
  own processes) carries its CPU time used (its virtual runtime); at each slice's end the core
  goes to the waiting user with the least, and one waking from a sleep starts no further back
  than `wake_bonus_ms` behind the least-run user on the host (CFS's sleeper credit). Users
  that mostly sleep (the readout, builder and collector, a worker waiting for its inference)
  so get a core ahead of the server's long executions, as on a real host.
With nobody waiting a burst keeps its core and costs no extra simulation events.
"""

from __future__ import annotations

import simpy


class CpuUser:
    """One user of the host's cores (a process or thread): its CPU time so far (ms)."""

    __slots__ = ("vruntime_ms",)

    def __init__(self) -> None:
        self.vruntime_ms = 0.0


class Cores:
    """`n` cores and how they are shared (see the module docstring)."""

    def __init__(self, env: simpy.Environment, n: int, slice_ms: float = 0.0, fair: bool = False,
                 wake_bonus_ms: float = 3.0):
        self.env, self.slice_ms, self.fair, self.wake_bonus_ms = env, slice_ms, fair and slice_ms > 0, wake_bonus_ms
        self.resource = simpy.PriorityResource(env, n) if self.fair else simpy.Resource(env, n)
        self.min_vruntime_ms = 0.0  # the least-run user's CPU time when last given a core: never decreases

    @property
    def capacity(self) -> int:
        return self.resource.capacity

    def run(self, user: CpuUser | None, ms: float):
        """A SimPy process body: `ms` of CPU for `user` on one of the cores."""
        env, res, slice_ms = self.env, self.resource, self.slice_ms
        if not self.fair:
            while ms > 0:
                with res.request() as core:
                    yield core
                    while ms > 0:
                        t = min(ms, slice_ms) if slice_ms > 0 else ms
                        yield env.timeout(t)
                        ms -= t
                        if res.queue:  # another burst waits: this one goes to the back of the queue
                            break
            return
        user = user or CpuUser()
        # waking: at most wake_bonus_ms behind the least-run user (a long sleep earns no more credit)
        user.vruntime_ms = max(user.vruntime_ms, self.min_vruntime_ms - self.wake_bonus_ms)
        while ms > 0:
            with res.request(priority=user.vruntime_ms) as core:
                yield core
                self.min_vruntime_ms = max(self.min_vruntime_ms, user.vruntime_ms)
                while ms > 0:
                    t = min(ms, slice_ms)
                    yield env.timeout(t)
                    ms -= t
                    user.vruntime_ms += t
                    if res.queue and res.queue[0].priority < user.vruntime_ms:
                        break  # a less-run user waits: it takes this core
