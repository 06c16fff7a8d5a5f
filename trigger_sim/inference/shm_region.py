"""One POSIX shared-memory region (/dev/shm/<name>), made and mapped with os and mmap.

Why not `multiprocessing.shared_memory` (which tritonclient's helpers use): every region it
creates is registered with multiprocessing's resource tracker, which prints "leaked
shared_memory objects" warnings (and unlinks the files itself) when a worker is killed
before removing its regions. The farm already owns that cleanup: a worker's regions carry
its run's prefix and the node agent removes them (`triton_shm.remove_regions`). Python 3.11
has no `SharedMemory(track=False)`, and unregistering after the fact makes the tracker
complain about an unknown name at the normal unlink; a plain file under /dev/shm is what
`shm_open` makes on Linux, and is what the Triton server opens by the key `/<name>`.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SHM_DIR = Path("/dev/shm")


class Region:
    """A region of `size_bytes` named `name` (letters, digits, '_', '-', '.'), created fresh
    (an existing file of that name is replaced); `destroy` unmaps and removes it."""

    def __init__(self, name: str, size_bytes: int):
        if not name or "/" in name or size_bytes <= 0:
            raise ValueError(f"a region needs a plain name and a positive size, got {name!r}, {size_bytes} bytes")
        self.name = name
        self.size_bytes = size_bytes
        self.path = SHM_DIR / name
        self.path.unlink(missing_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size_bytes)
            self._map = mmap.mmap(fd, size_bytes)
        except BaseException:
            self.path.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)

    @property
    def key(self) -> str:
        """The key the server opens the region by (`shm_open` name)."""
        return f"/{self.name}"

    def write(self, arrays: Sequence[np.ndarray], offset_bytes: int = 0) -> None:
        """Copy the arrays one after the other from `offset_bytes`."""
        for array in arrays:
            array = np.ascontiguousarray(array)
            if offset_bytes + array.nbytes > self.size_bytes:
                raise ValueError(f"{self.name}: {array.nbytes} bytes at offset {offset_bytes} do not fit {self.size_bytes}")
            np.ndarray(array.shape, array.dtype, buffer=self._map, offset=offset_bytes)[...] = array
            offset_bytes += array.nbytes

    def read(self, dtype: np.dtype, shape: Sequence[int], offset_bytes: int = 0) -> np.ndarray:
        """A copy of the array of `dtype` and `shape` stored at `offset_bytes`."""
        view = np.ndarray(tuple(shape), dtype, buffer=self._map, offset=offset_bytes)
        return view.copy()

    def destroy(self) -> None:
        """Unmap and remove the file (the server keeps its own mapping until it unregisters)."""
        with contextlib.suppress(BufferError, ValueError):
            self._map.close()
        self.path.unlink(missing_ok=True)
