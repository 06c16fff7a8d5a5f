"""Built events handed from a node's builder to its workers through node-local shared memory.

As CMS's builder unit hands built events to its filter units through a RAM disk, the
builder copies each event's fragment frames into a ring in shared memory and sends the
worker only a descriptor (where the frames are and how long each is) in the EVENT message,
so the event's bytes cross the node once through ZeroMQ (readout -> builder), not twice.

The ring is an anonymous memory file (memfd): it has no name in /dev/shm, so nothing is
left behind whatever way the builder ends. Workers on the same host map it read-only
through the builder's /proc/<pid>/fd/<fd>. A worker copies the event out of the ring as
soon as it receives the descriptor, so the builder may reuse the block as soon as the
event leaves the builder or goes back to its queue; a worker never reads a block it was
not given. When the ring has no room (a worker holds old events), the event travels inside
the message as before (counted).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Sequence
from typing import Any

from trigger_sim.ring_space import Block, RingSpace, aligned_steps

MiB = 1024 * 1024


class EventRing:
    """The builder's side: a ring it writes events into (`put`) and reclaims (`give_back`)."""

    def __init__(self, capacity_mb: float):
        capacity = int(capacity_mb * MiB)
        self.space = RingSpace(capacity)
        self.fd = os.memfd_create("trigger-sim-events", os.MFD_CLOEXEC)
        try:  # the pages are allocated now (ENOSPC here, not SIGBUS later) and mapped at once:
            # page faults while events flow would cost more than the copy itself
            os.posix_fallocate(self.fd, 0, self.space.capacity)
            self._map = mmap.mmap(self.fd, self.space.capacity, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE)
        except OSError:
            os.close(self.fd)
            raise
        self.path = f"/proc/{os.getpid()}/fd/{self.fd}"  # how a worker on this host opens it
        self.events = 0  # events written into the ring
        self.inline = 0  # events sent inside the message: no room

    def put(self, frames: Sequence[Any]) -> tuple[Block, dict[str, Any]] | None:
        """Copy `frames` (zmq.Frame, bytes or flat byte views) into one block: (block,
        descriptor for the worker), or None if the ring has no room."""
        sizes = [len(f) for f in frames]
        steps = aligned_steps(sizes)
        block = self.space.take(sum(steps))
        if block is None:
            self.inline += 1
            return None
        ring, offset = self._map, block.offset
        for frame, n, step in zip(frames, sizes, steps):
            ring[offset:offset + n] = frame  # one memcpy per frame
            offset += step
        self.events += 1
        return block, {"path": self.path, "offset": block.offset, "sizes": sizes}

    def give_back(self, block: Block | None) -> None:
        if block is not None:
            self.space.give_back(block)

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)


class RingReader:
    """A worker's side: the builder's ring mapped read-only (once), events copied out of it."""

    def __init__(self) -> None:
        self._maps: dict[str, mmap.mmap] = {}

    def read(self, descriptor: dict[str, Any]) -> list[memoryview]:
        """The event's frames, copied out of the ring (one copy of the whole block).

        Raises ValueError (or OSError when the ring cannot be opened) for a descriptor
        that does not name bytes inside a ring."""
        path, offset, sizes = descriptor["path"], descriptor["offset"], descriptor["sizes"]
        try:
            if type(path) is not str or type(offset) is not int or type(sizes) is not list or min(sizes, default=0) < 0:
                raise TypeError
            steps = aligned_steps(sizes)
        except TypeError:
            raise ValueError(f"ring descriptor {descriptor!r:.200}") from None
        ring = self._maps.get(path)
        if ring is None:
            ring = self._maps[path] = self._open(path)
        end = offset + sum(steps)
        if offset < 0 or end > len(ring):
            raise ValueError(f"ring descriptor [{offset}, {end}) outside the ring of {len(ring)} bytes")
        data = memoryview(ring[offset:end])  # the copy: the builder may reuse the block from now on
        frames, at = [], 0
        for n, step in zip(sizes, steps):
            frames.append(data[at:at + n])
            at += step
        return frames

    @staticmethod
    def _open(path: str) -> mmap.mmap:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return mmap.mmap(fd, os.fstat(fd).st_size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=mmap.PROT_READ)
        finally:
            os.close(fd)

    def close(self) -> None:
        for ring in self._maps.values():
            ring.close()
        self._maps.clear()
