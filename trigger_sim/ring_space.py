"""Space in a ring of bytes, handed out in order and given back in any order, without I/O.

The event builder copies each event it dispatches into a shared-memory ring and sends the
worker only where the bytes are (`farm.event_handoff`). Blocks are taken at the head, one
after the other, wrapping to the start when the end is reached; a block given back is
reused once every block taken before it is given back too (the tail only moves forward).
An event held long by a slow worker therefore holds up reuse behind it: when no space is
left, `take` returns None and the builder sends that event inside the message instead.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

ALIGN = 8  # every block, and every frame inside one, starts 8-byte aligned (numpy views)


def aligned(nbytes: int) -> int:
    """`nbytes` rounded up to a multiple of `ALIGN`."""
    return (nbytes + ALIGN - 1) & -ALIGN


def aligned_steps(sizes: list[int]) -> list[int]:
    """Each of `sizes` rounded up to `ALIGN` (`aligned` per item, without a call per frame:
    this runs for every frame of every event handed to a worker)."""
    return [(n + ALIGN - 1) & -ALIGN for n in sizes]


@dataclass(eq=False)
class Block:
    offset: int
    nbytes: int
    live: bool = True


class RingSpace:
    def __init__(self, capacity: int):
        if capacity < ALIGN:
            raise ValueError(f"ring capacity {capacity} bytes: give at least {ALIGN}")
        self.capacity = capacity - capacity % ALIGN
        self._blocks: deque[Block] = deque()  # taken and not yet reclaimed, oldest first
        self._head = 0  # where the next block goes
        self.used = 0  # bytes in live blocks
        self.refused = 0  # takes answered None (no space)

    @property
    def n_blocks(self) -> int:
        return sum(1 for b in self._blocks if b.live)

    def take(self, nbytes: int) -> Block | None:
        """A block of `nbytes` (rounded up to `ALIGN`), or None when the ring has no room."""
        size = aligned(max(nbytes, 1))
        if not self._blocks:
            self._head = 0  # empty: start again at the beginning (no wrap needed)
        tail = self._blocks[0].offset if self._blocks else 0
        wrapped = bool(self._blocks) and self._head <= tail  # the live span runs over the end
        if not wrapped:
            if self._head + size <= self.capacity:
                offset = self._head
            elif size <= tail:  # wrap: start again before the oldest live block
                offset = 0
            else:
                offset = None
        else:
            offset = self._head if self._head + size <= tail else None
        if offset is None:
            self.refused += 1
            return None
        block = Block(offset, size)
        self._blocks.append(block)
        self._head = offset + size
        self.used += size
        return block

    def give_back(self, block: Block) -> None:
        """The block's bytes may be overwritten (giving one back twice is a no-op)."""
        if not block.live:
            return
        block.live = False
        self.used -= block.nbytes
        while self._blocks and not self._blocks[0].live:
            self._blocks.popleft()
