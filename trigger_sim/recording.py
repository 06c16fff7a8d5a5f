"""Event-record files: what the farm writes for its output streams, and reads back.

File layout (little-endian)::

    file header   8 bytes  magic b"TSRECv1\\n"
                  u32      metadata length
                  msgpack  map: format_version (1), run_number, stream, created_unix_s,
                           trigger_sim_version, detector (the caller's configuration dict)
    records       one after another, each:
                  4 bytes  magic b"TSRE"
                  u64      body length in bytes
                  u32      crc32 of the body
                  msgpack  body: {"l1_id": int, "meta": map, "fragments": [bin, ...]}
    index trailer written by `RecordWriter.close` (absent when the writer never closed):
                  4 bytes  magic b"TSIX"
                  msgpack  list of [l1_id, record byte offset], in file order
    footer        u64      length of the msgpack index
                  u32      crc32 of the msgpack index
                  8 bytes  magic b"TSIDXv1\n" (last bytes of the file: found from the end)

Each fragment is stored as `wire.pack_frames` of its wire frames, so the collector writes
what it received without re-encoding and the reader decodes it with `wire.decode_fragment`,
checking the fragment's own CRC as well. A record is written in one call, so a crash leaves
at most one partial record at the end: the reader stops there and sets `truncated_at`.
Records are self-delimiting and `RecordWriter.write` returns each record's byte offset,
which `RecordReader.read_at` accepts.

The index gives `len()` and random access without reading every record. The reader uses it
only when footer, magic, CRC and offsets all check out (the last indexed record must end
exactly where the trailer starts); otherwise it scans the records sequentially, stopping
at a partial record or at a partial trailer (both set `truncated_at`). Files without an
index (format version 1 before the index existed, or a writer that crashed) read as before;
readers that predate the index stop at the trailer with "bad record magic b'TSIX'".
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import msgpack

from trigger_sim import __version__, wire
from trigger_sim.errors import RecordingError, WireFormatError
from trigger_sim.event import Fragment

if TYPE_CHECKING:
    from trigger_sim.config import FarmConfig

FILE_MAGIC = b"TSRECv1\n"
FORMAT_VERSION = 1
RECORD_MAGIC = b"TSRE"

INDEX_MAGIC = b"TSIX"
FOOTER_MAGIC = b"TSIDXv1\n"

_HEADER_LEN = struct.Struct("<I")
_PREFIX = struct.Struct("<4sQI")  # record magic, body length, body crc32
RECORD_PREFIX_SIZE = _PREFIX.size  # 16
_FOOTER = struct.Struct("<QI8s")  # index length, index crc32, footer magic
FOOTER_SIZE = _FOOTER.size  # 20

MiB = 1024 * 1024
GiB = 1024 * MiB
MAX_FILE_HEADER_BYTES = 16 * MiB
DEFAULT_MAX_RECORD_BYTES = 1 * GiB
_WRITE_BUFFER_BYTES = 1 * MiB


@dataclass(frozen=True)
class Record:
    """One recorded event: its Level-1 id, decision info and fragments."""

    l1_id: int
    meta: dict[str, Any]
    fragments: list[Fragment]
    offset: int = field(default=-1, compare=False)  # byte offset of the record in its file
    nbytes: int = field(default=-1, compare=False)  # size of the record in the file, prefix included


_UNPACK_ERRORS = (ValueError, TypeError, msgpack.UnpackException)


def _unpack(data: bytes) -> Any:
    """msgpack object from untrusted bytes: no length may exceed the data, no ext types."""
    n = len(data)
    return msgpack.unpackb(
        data,
        raw=False,
        strict_map_key=False,
        max_bin_len=n,
        max_str_len=n,
        max_array_len=n,
        max_map_len=n,
        max_ext_len=0,
    )


class RecordWriter:
    """Appends event records to a new recording file; use as a context manager.

    Writes go through a buffered file; `close` appends the index trailer, flushes and fsyncs.
    An existing file is refused unless `overwrite` is set, so a restarted run cannot clobber
    its output. `source` (optional) is stored in the header: where the events came from.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        run_number: int,
        stream: str,
        detector: dict[str, Any],
        *,
        limits: wire.WireLimits = wire.DEFAULT_LIMITS,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        overwrite: bool = False,
        source: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self._limits = limits
        self._max_record_bytes = max_record_bytes
        self._index: list[tuple[int, int]] = []
        self._failed = False  # a write that raised mid-way: no index, the reader scans
        header: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "run_number": run_number,
            "stream": stream,
            "created_unix_s": time.time(),  # wall clock: when, not how long
            "trigger_sim_version": __version__,
            "detector": detector,
            "index_on_close": True,  # a file without the trailer was never closed
        }
        if source is not None:
            header["source"] = source
        metadata = msgpack.packb(header, use_bin_type=True)
        if len(metadata) > MAX_FILE_HEADER_BYTES:
            raise RecordingError(
                f"{self.path}: file metadata is {len(metadata)} bytes, limit is "
                f"{MAX_FILE_HEADER_BYTES}"
            )
        self._file: BinaryIO | None = open(  # noqa: SIM115 - closed in close()
            self.path, "wb" if overwrite else "xb", buffering=_WRITE_BUFFER_BYTES
        )
        self._file.write(FILE_MAGIC + _HEADER_LEN.pack(len(metadata)) + metadata)
        self._offset = len(FILE_MAGIC) + _HEADER_LEN.size + len(metadata)

    def write(
        self, l1_id: int, meta: dict[str, Any], fragment_frames: Sequence[Sequence[Any]]
    ) -> int:
        """Append one event given its fragments' wire frames; returns the record's offset.

        Each fragment is fully decoded (CRC included) first, so a corrupt fragment raises
        `WireFormatError` here and never makes the file unreadable later.
        """
        if self._file is None:
            raise ValueError(f"{self.path}: write to a closed RecordWriter")
        stored = []
        for frames in fragment_frames:
            wire.decode_fragment(frames, self._limits)
            stored.append(wire.pack_frames(frames))
        body = msgpack.packb(
            {"l1_id": l1_id, "meta": meta, "fragments": stored}, use_bin_type=True
        )
        if len(body) > self._max_record_bytes:  # a reader with the same cap would refuse it
            raise RecordingError(
                f"{self.path}: record of l1_id {l1_id} is {len(body)} bytes, limit is "
                f"{self._max_record_bytes}"
            )
        prefix = _PREFIX.pack(RECORD_MAGIC, len(body), zlib.crc32(body))
        try:
            self._file.write(prefix + body)  # one write: a crash cuts at most this record
        except BaseException:
            self._failed = True
            raise
        offset = self._offset
        self._index.append((l1_id, offset))
        self._offset += len(prefix) + len(body)
        return offset

    @property
    def next_offset(self) -> int:
        """Byte offset where the next record (or, on close, the index trailer) starts."""
        return self._offset

    def write_event(self, l1_id: int, meta: dict[str, Any], fragments: Sequence[Fragment]) -> int:
        """Append one event given decoded fragments; returns the record's offset."""
        return self.write(l1_id, meta, [wire.encode_fragment(f) for f in fragments])

    def close(self) -> None:
        """Append the index trailer, flush, fsync and close; safe to call twice."""
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            if not self._failed:
                index = msgpack.packb([list(e) for e in self._index], use_bin_type=True)
                footer = _FOOTER.pack(len(index), zlib.crc32(index), FOOTER_MAGIC)
                file.write(INDEX_MAGIC + index + footer)
            file.flush()
            os.fsync(file.fileno())
        finally:
            file.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_generated(config: FarmConfig, path: str | os.PathLike[str], n_events: int, *, overwrite: bool = False,
                    on_event: Callable[[], None] | None = None, truth: bool = False) -> None:
    """Simulate `n_events` events (Level-1 ids 0..n-1) from `config` and write them to a new
    recording whose header names the source (generated, seed, pile-up); `on_event` is called
    after each event is written (progress). `trigger-sim record` and the benchmark use it.

    With `truth` (what `trigger-sim record` does unless told not to), each record's
    `meta["truth"]` holds the event's truth (`record_truth.truth_meta`: hit-to-particle,
    particles' pT, charge and origin, hard objects; about half again the record's size at
    pile-up 60), so `trigger-sim validate --recording` gives the figures `validate` gives on
    these events. The benchmark's replay files go without it."""
    from trigger_sim.config import as_dict
    from trigger_sim.partition import tracker_hit_order
    from trigger_sim.record_truth import generated_truth, truth_meta
    from trigger_sim.simulation import fragments_of, simulate  # the simulation's kernels: only when generating

    source = {"kind": "generated", "seed": config.run.seed, "pileup_mean": config.physics.pileup_mean, "truth": truth}
    with RecordWriter(path, config.run.run_number, "generated", as_dict(config), overwrite=overwrite,
                      source=source) as writer:
        for l1_id in range(n_events):
            sim = simulate(config, l1_id)
            meta = {"truth": truth_meta(generated_truth(sim, tracker_hit_order(sim.hits, config.tracker)))} if truth else {}
            writer.write_event(l1_id, meta, fragments_of(config, sim, l1_id, l1_time_ns=0))
            if on_event:
                on_event()


class RecordReader:
    """Reads a recording: `.header` is the file metadata, iteration yields `Record`s.

    `index` is the list of (l1_id, byte offset) from the index trailer, or None when the
    file has no valid index (`index_problem` then says why); `len()` and `read_at` use it
    when present. A file cut short (a partial final record or a partial trailer, as after
    a crash) is read up to the last complete record and `truncated_at` is set to the byte
    offset of the partial part. Corruption before the end (bad record magic, CRC, or
    content) raises `RecordingError` naming the byte offset. Bodies longer than
    `max_record_bytes` are refused before reading.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        limits: wire.WireLimits = wire.DEFAULT_LIMITS,
        *,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        self.path = Path(path)
        self.limits = limits
        self.max_record_bytes = max_record_bytes
        self.truncated_at: int | None = None
        self.index: list[tuple[int, int]] | None = None
        self.index_offset: int | None = None  # where the valid trailer starts
        self.index_problem: str | None = None
        with open(self.path, "rb") as f:
            self.header, self._data_offset = self._read_file_header(f)
            try:
                self.index, self.index_offset = self._read_index(f)
            except _BadIndex as exc:
                self.index_problem = str(exc)
        self._indexed_offsets = {o for _, o in self.index} if self.index is not None else None

    def _read_file_header(self, f: BinaryIO) -> tuple[dict[str, Any], int]:
        magic = f.read(len(FILE_MAGIC))
        if magic != FILE_MAGIC:
            raise RecordingError(
                f"{self.path}: bad file magic {magic!r} (expected {FILE_MAGIC!r}): "
                "not a trigger-sim recording"
            )
        raw_len = f.read(_HEADER_LEN.size)
        if len(raw_len) < _HEADER_LEN.size:
            raise RecordingError(f"{self.path}: file ends inside its header")
        (length,) = _HEADER_LEN.unpack(raw_len)
        if length > MAX_FILE_HEADER_BYTES:
            raise RecordingError(
                f"{self.path}: file header claims {length} bytes, limit is "
                f"{MAX_FILE_HEADER_BYTES}"
            )
        data = f.read(length)
        if len(data) < length:
            raise RecordingError(f"{self.path}: file ends inside its header")
        try:
            header = _unpack(data)
        except _UNPACK_ERRORS as exc:
            raise RecordingError(f"{self.path}: file header is not valid msgpack: {exc}") from exc
        if not isinstance(header, dict):
            raise RecordingError(f"{self.path}: file header is not a map")
        version = header.get("format_version")
        if version != FORMAT_VERSION:
            raise RecordingError(
                f"{self.path}: recording format_version {version!r} is not supported "
                f"(this build reads {FORMAT_VERSION})"
            )
        return header, len(FILE_MAGIC) + _HEADER_LEN.size + length

    def _read_index(self, f: BinaryIO) -> tuple[list[tuple[int, int]] | None, int | None]:
        """(entries, trailer offset) from the footer, (None, None) when there is no footer.

        Raises `_BadIndex` when a footer is there but anything about the index is wrong.
        """
        file_size = os.fstat(f.fileno()).st_size
        if file_size - self._data_offset < len(INDEX_MAGIC) + FOOTER_SIZE:
            return None, None
        f.seek(file_size - FOOTER_SIZE)
        length, crc, magic = _FOOTER.unpack(f.read(FOOTER_SIZE))
        if magic != FOOTER_MAGIC:
            return None, None
        start = file_size - FOOTER_SIZE - length - len(INDEX_MAGIC)
        if start < self._data_offset:
            raise _BadIndex(f"footer claims an index of {length} bytes, more than the file holds")
        f.seek(start)
        if f.read(len(INDEX_MAGIC)) != INDEX_MAGIC:
            raise _BadIndex(f"no index magic at byte offset {start}")
        body = f.read(length)
        if zlib.crc32(body) != crc:
            raise _BadIndex(f"CRC mismatch in the index at byte offset {start}")
        try:
            content = _unpack(body)
        except _UNPACK_ERRORS as exc:
            raise _BadIndex(f"index at byte offset {start} is not valid msgpack: {exc}") from exc
        entries = self._check_index(content, start)
        if entries:  # the last record must end exactly where the trailer starts
            last = entries[-1][1]
            f.seek(last)
            prefix = f.read(RECORD_PREFIX_SIZE)
            if (len(prefix) < RECORD_PREFIX_SIZE or prefix[:4] != RECORD_MAGIC
                    or last + RECORD_PREFIX_SIZE + _PREFIX.unpack(prefix)[1] != start):
                raise _BadIndex(f"the last indexed record (byte offset {last}) does not end "
                                f"where the index starts ({start})")
        return entries, start

    def _check_index(self, content: Any, start: int) -> list[tuple[int, int]]:
        """Index entries as (l1_id, offset) tuples: pairs of ints, offsets increasing inside
        the records, the first at the first record."""
        if not isinstance(content, list):
            raise _BadIndex(f"index at byte offset {start} is not a list")
        entries: list[tuple[int, int]] = []
        previous = self._data_offset - 1
        for entry in content:
            if not isinstance(entry, list) or len(entry) != 2 or not all(type(v) is int for v in entry):
                raise _BadIndex(f"index entry {entry!r:.60} is not a pair of ints")
            l1_id, offset = entry
            if not previous < offset < start:
                raise _BadIndex(f"index offset {offset} is out of order or outside the records")
            entries.append((l1_id, offset))
            previous = offset
        expected_first = entries[0][1] if entries else start
        if expected_first != self._data_offset:
            raise _BadIndex(f"index does not start at the first record ({self._data_offset})")
        return entries

    def _records_end(self, f: BinaryIO) -> int:
        """Where records stop: the trailer when indexed, else the current end of the file."""
        if self.index_offset is not None:
            return self.index_offset
        return os.fstat(f.fileno()).st_size

    def _read_record(self, f: BinaryIO, offset: int) -> tuple[Record, int] | None:
        """(record, next offset) at `offset`; None when the file ends inside the record or
        a partial index trailer starts there (only possible without a valid index)."""
        indexed = self.index_offset is not None
        end = self._records_end(f)
        if end - offset < RECORD_PREFIX_SIZE:
            if indexed:
                raise RecordingError(
                    f"{self.path}: the record at byte offset {offset} overlaps the index at "
                    f"{end}; the file is corrupt"
                )
            return None
        f.seek(offset)
        magic, length, crc = _PREFIX.unpack(f.read(RECORD_PREFIX_SIZE))
        if magic == INDEX_MAGIC and not indexed:
            return None  # the start of an incomplete or corrupt index: records end here
        if magic != RECORD_MAGIC:
            raise RecordingError(
                f"{self.path}: bad record magic {magic!r} at byte offset {offset}"
            )
        if length > self.max_record_bytes:
            raise RecordingError(
                f"{self.path}: record at byte offset {offset} claims {length} bytes, limit is "
                f"{self.max_record_bytes}"
            )
        if end - offset - RECORD_PREFIX_SIZE < length:
            if indexed:
                raise RecordingError(
                    f"{self.path}: record at byte offset {offset} claims {length} bytes, past "
                    f"the index at {end}; the file is corrupt"
                )
            return None  # checked against the file size, so nothing is allocated for it
        body = f.read(length)
        if len(body) < length:
            return None
        if zlib.crc32(body) != crc:
            raise RecordingError(
                f"{self.path}: CRC mismatch in the record at byte offset {offset}"
            )
        nbytes = RECORD_PREFIX_SIZE + length
        return self._decode_body(body, offset, nbytes), offset + nbytes

    def _decode_body(self, body: bytes, offset: int, nbytes: int) -> Record:
        where = f"{self.path}: record at byte offset {offset}"
        try:
            content = _unpack(body)
        except _UNPACK_ERRORS as exc:
            raise RecordingError(f"{where} is not valid msgpack: {exc}") from exc
        if not isinstance(content, dict) or not {"l1_id", "meta", "fragments"} <= content.keys():
            raise RecordingError(f"{where} is not a map with l1_id, meta and fragments")
        l1_id, meta, stored = content["l1_id"], content["meta"], content["fragments"]
        if not isinstance(l1_id, int) or not isinstance(meta, dict):
            raise RecordingError(f"{where}: l1_id is not an int or meta is not a map")
        if not isinstance(stored, list) or not all(isinstance(s, bytes) for s in stored):
            raise RecordingError(f"{where}: fragments is not a list of byte strings")
        try:
            fragments = [wire.decode_from_bytes(s, self.limits) for s in stored]
        except WireFormatError as exc:
            raise RecordingError(f"{where} holds a bad fragment: {exc}") from exc
        return Record(l1_id=l1_id, meta=meta, fragments=fragments, offset=offset, nbytes=nbytes)

    def __iter__(self) -> Iterator[Record]:
        self.truncated_at = None
        index = self.index
        with open(self.path, "rb") as f:
            offset, position = self._data_offset, 0
            while offset < self._records_end(f):
                result = self._read_record(f, offset)
                if result is None:
                    self.truncated_at = offset
                    return
                record, next_offset = result
                if index is not None and (
                    position >= len(index) or index[position] != (record.l1_id, offset)
                ):
                    raise RecordingError(
                        f"{self.path}: the record at byte offset {offset} does not match index "
                        f"entry {position}; the file is corrupt"
                    )
                yield record
                offset, position = next_offset, position + 1

    def __len__(self) -> int:
        """Number of complete records: from the index, else by reading the whole file."""
        if self.index is not None:
            return len(self.index)
        return sum(1 for _ in self)

    def read_at(self, offset: int) -> Record:
        """The record starting at byte `offset` (as returned by `RecordWriter.write`)."""
        if offset < self._data_offset:
            raise RecordingError(
                f"{self.path}: byte offset {offset} is inside the file header"
            )
        if self._indexed_offsets is not None and offset not in self._indexed_offsets:
            raise RecordingError(
                f"{self.path}: no record starts at byte offset {offset} (the index lists "
                f"{len(self._indexed_offsets)} records; offsets come from RecordWriter.write "
                "or RecordReader.index)"
            )
        with open(self.path, "rb") as f:
            result = self._read_record(f, offset)
        if result is None:
            raise RecordingError(
                f"{self.path}: file ends inside the record at byte offset {offset}"
            )
        return result[0]


class _BadIndex(Exception):
    """The index trailer is present but unusable; the reader falls back to a scan."""


def read_records(
    path: str | os.PathLike[str], limits: wire.WireLimits = wire.DEFAULT_LIMITS
) -> list[Record]:
    """All complete records of a recording (a partial final record is skipped)."""
    return list(RecordReader(path, limits))
