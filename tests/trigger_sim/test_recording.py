"""Tests of trigger_sim.recording: round trips, truncated files, corruption."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_sim import wire
from trigger_sim.errors import RecordingError, WireFormatError
from trigger_sim.event import Fragment, FragmentHeader
from trigger_sim.recording import (
    FILE_MAGIC,
    RECORD_PREFIX_SIZE,
    Record,
    RecordReader,
    RecordWriter,
    read_records,
)

DETECTOR = {"tracker": {"sectors": 8}, "calo": {"regions": 4, "gain": 1.25}}

meta_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False) | st.text(max_size=8) | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
metas = st.dictionaries(st.text(max_size=8), meta_values, max_size=4)


@st.composite
def fragments(draw: st.DrawFn) -> Fragment:
    header = FragmentHeader(
        run_number=draw(st.integers(0, 2**32 - 1)), l1_id=draw(st.integers(0, 2**64 - 1)),
        bcid=draw(st.integers(0, 3563)), source_id=draw(st.integers(0, 2**16 - 1)),
        l1_time_ns=draw(st.integers(0, 2**63 - 1)),
    )
    n = draw(st.integers(0, 6))
    raw = draw(st.binary(min_size=4 * n, max_size=4 * n))
    return Fragment(header, {"hits": np.frombuffer(raw, "<f4"), "n": np.array([n], np.int32)})


events = st.tuples(st.integers(0, 2**64 - 1), metas, st.lists(fragments(), max_size=3))


def make_fragment(l1_id: int, source_id: int, n: int) -> Fragment:
    return Fragment(
        FragmentHeader(run_number=9, l1_id=l1_id, bcid=l1_id % 3564, source_id=source_id,
                       l1_time_ns=1000 * l1_id),
        {"energy": np.linspace(0.0, 1.0, n, dtype=np.float32),
         "cell": np.arange(n, dtype=np.uint16)},
    )


def assert_same_record(record: Record, l1_id: int, meta: dict, frags: list[Fragment]) -> None:
    assert record.l1_id == l1_id
    assert record.meta == meta
    assert len(record.fragments) == len(frags)
    for got, want in zip(record.fragments, frags):
        assert got.header == want.header
        assert list(got.arrays) == list(want.arrays)
        for name, array in want.arrays.items():
            assert got.arrays[name].dtype == array.dtype
            assert got.arrays[name].tobytes() == array.tobytes()


@pytest.fixture
def small_file(tmp_path: Path) -> tuple[Path, list[int], list[tuple[int, dict, list]]]:
    """A recording of three events; returns (path, record boundaries, events).

    The boundaries are the record offsets and the end of the last record (where the index
    trailer starts).
    """
    path = tmp_path / "small.tsrec"
    written = [
        (1, {"chains": ["HLT_e25"], "streams": ["Egamma"]}, [make_fragment(1, 0x101, 3)]),
        (2, {"reason": "debug", "chains": []}, []),
        (3, {"chains": ["HLT_j100"]}, [make_fragment(3, 0x101, 2), make_fragment(3, 0x201, 0)]),
    ]
    with RecordWriter(path, run_number=9, stream="physics", detector=DETECTOR) as writer:
        offsets = [writer.write_event(*event) for event in written]
        records_end = writer.next_offset
    return path, [*offsets, records_end], written


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(events, max_size=5))
def test_records_round_trip(tmp_path_factory: pytest.TempPathFactory, written: list) -> None:
    path = tmp_path_factory.mktemp("rec") / "stream.tsrec"
    with RecordWriter(path, run_number=5, stream="debug", detector=DETECTOR) as writer:
        for l1_id, meta, frags in written:
            writer.write(l1_id, meta, [wire.encode_fragment(f) for f in frags])
    reader = RecordReader(path)
    records = list(reader)
    assert reader.truncated_at is None
    assert len(records) == len(written)
    for record, event in zip(records, written):
        assert_same_record(record, *event)


def test_file_header(small_file: tuple) -> None:
    path, _, _ = small_file
    header = RecordReader(path).header
    assert header["format_version"] == 1
    assert header["run_number"] == 9
    assert header["stream"] == "physics"
    assert header["detector"] == DETECTOR
    assert isinstance(header["created_unix_s"], float)


def test_read_at_offsets_and_read_records(small_file: tuple) -> None:
    path, bounds, written = small_file
    reader = RecordReader(path)
    for offset, event in zip(bounds, written):
        record = reader.read_at(offset)
        assert record.offset == offset
        assert_same_record(record, *event)
    assert [r.l1_id for r in read_records(path)] == [1, 2, 3]
    with pytest.raises(RecordingError, match="inside the file header"):
        reader.read_at(0)


def test_file_cut_at_every_offset(small_file: tuple, tmp_path: Path) -> None:
    path, bounds, written = small_file
    data = path.read_bytes()
    cut_path = tmp_path / "cut.tsrec"
    for cut in range(len(data) + 1):
        cut_path.write_bytes(data[:cut])
        if cut < bounds[0]:
            with pytest.raises(RecordingError, match=str(cut_path)):
                RecordReader(cut_path)
            continue
        reader = RecordReader(cut_path)
        records = list(reader)
        complete = sum(1 for end in bounds[1:] if end <= cut)
        assert [r.l1_id for r in records] == [e[0] for e in written[:complete]]
        for record, event in zip(records, written):
            assert_same_record(record, *event)
        # A cut inside the index trailer keeps every record; the partial trailer is ignored.
        expected_truncation = None if cut in bounds or cut == len(data) else bounds[complete]
        assert reader.truncated_at == expected_truncation, cut
        assert (reader.index is not None) == (cut == len(data)), cut


def test_corrupt_body_byte_names_the_offset(small_file: tuple) -> None:
    path, bounds, _ = small_file
    data = bytearray(path.read_bytes())
    data[bounds[1] + RECORD_PREFIX_SIZE + 5] ^= 0x40
    path.write_bytes(data)
    reader = iter(RecordReader(path))
    assert next(reader).l1_id == 1  # records before the corruption are still read
    with pytest.raises(RecordingError, match=f"CRC mismatch .* byte offset {bounds[1]}"):
        next(reader)


def test_every_corrupt_record_byte_raises(small_file: tuple, tmp_path: Path) -> None:
    path, bounds, _ = small_file
    data = path.read_bytes()
    bad = tmp_path / "bad.tsrec"
    for pos in range(bounds[0], bounds[-1]):
        corrupt = bytearray(data)
        corrupt[pos] ^= 0x01
        bad.write_bytes(corrupt)
        reader = RecordReader(bad)
        try:
            list(reader)
        except RecordingError as exc:
            assert "byte offset" in str(exc)
        else:
            # A flipped bit in a length field can only make a record look cut short.
            assert reader.truncated_at is not None, pos


def test_bad_record_magic_in_the_middle(small_file: tuple) -> None:
    path, bounds, _ = small_file
    data = bytearray(path.read_bytes())
    data[bounds[2]:bounds[2] + 4] = b"XXXX"
    path.write_bytes(data)
    match = f"bad record magic b'XXXX' at byte offset {bounds[2]}"
    with pytest.raises(RecordingError, match=match):
        list(RecordReader(path))


def test_record_length_over_the_cap_is_refused(small_file: tuple) -> None:
    path, bounds, _ = small_file
    data = bytearray(path.read_bytes())
    struct.pack_into("<Q", data, bounds[0] + 4, 2**62)
    path.write_bytes(data)
    with pytest.raises(RecordingError, match=f"byte offset {bounds[0]} claims {2**62} bytes"):
        list(RecordReader(path))
    with pytest.raises(RecordingError, match="limit is 10"):
        list(RecordReader(path, max_record_bytes=10))


def test_bad_file_magic_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "not-a-recording.bin"
    path.write_bytes(b"PK\x03\x04 something else entirely")
    with pytest.raises(RecordingError, match=f"{path}: bad file magic"):
        RecordReader(path)


def test_unsupported_format_version(tmp_path: Path) -> None:
    import msgpack

    path = tmp_path / "v2.tsrec"
    meta = msgpack.packb({"format_version": 2})
    path.write_bytes(FILE_MAGIC + struct.pack("<I", len(meta)) + meta)
    with pytest.raises(RecordingError, match="format_version 2"):
        RecordReader(path)


def test_writer_rejects_corrupt_frames_and_existing_files(small_file: tuple) -> None:
    path, _, _ = small_file
    with pytest.raises(FileExistsError):
        RecordWriter(path, run_number=9, stream="physics", detector={})
    with RecordWriter(path, 9, "physics", {}, overwrite=True) as writer:
        frames = [bytearray(f) for f in wire.encode_fragment(make_fragment(1, 1, 4))]
        frames[1][0] ^= 1
        with pytest.raises(WireFormatError):
            writer.write(1, {}, [frames])
    assert read_records(path) == []
    with pytest.raises(ValueError, match="closed"):
        writer.write(1, {}, [])
    with RecordWriter(path, 9, "physics", {}, overwrite=True, max_record_bytes=64) as writer:
        with pytest.raises(RecordingError, match="limit is 64"):
            writer.write_event(1, {}, [make_fragment(1, 1, 40)])


def write_recording(path: Path, written: list) -> tuple[list[int], int]:
    """Write `written` events; returns (record offsets, end of the last record)."""
    with RecordWriter(path, run_number=5, stream="debug", detector=DETECTOR) as writer:
        offsets = [writer.write(l1_id, meta, [wire.encode_fragment(f) for f in frags])
                   for l1_id, meta, frags in written]
        records_end = writer.next_offset
    return offsets, records_end


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(events, max_size=5), st.booleans())
def test_round_trip_with_and_without_index(
    tmp_path_factory: pytest.TempPathFactory, written: list, keep_index: bool
) -> None:
    path = tmp_path_factory.mktemp("rec") / "stream.tsrec"
    offsets, records_end = write_recording(path, written)
    if not keep_index:  # as if the writer had crashed after its last record
        path.write_bytes(path.read_bytes()[:records_end])
    reader = RecordReader(path)
    assert (reader.index is not None) == keep_index
    assert reader.index_problem is None
    if keep_index:
        assert reader.index == [(event[0], offset) for event, offset in zip(written, offsets)]
        assert reader.index_offset == records_end
    assert len(reader) == len(written)
    records = list(reader)
    assert reader.truncated_at is None
    assert len(records) == len(written)
    for record, event in zip(records, written):
        assert_same_record(record, *event)
    for offset, event in reversed(list(zip(offsets, written))):  # random access, any order
        assert_same_record(reader.read_at(offset), *event)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(events, max_size=4), st.data())
def test_file_cut_anywhere_reads_to_the_last_complete_record(
    tmp_path_factory: pytest.TempPathFactory, written: list, data: st.DataObject
) -> None:
    path = tmp_path_factory.mktemp("rec") / "stream.tsrec"
    offsets, records_end = write_recording(path, written)
    full = path.read_bytes()
    bounds = [*offsets, records_end]
    cut = data.draw(st.integers(bounds[0], len(full)), label="cut")
    path.write_bytes(full[:cut])
    reader = RecordReader(path)
    records = list(reader)
    complete = sum(1 for end in bounds[1:] if end <= cut)
    assert len(records) == complete
    for record, event in zip(records, written):
        assert_same_record(record, *event)
    assert len(reader) == complete
    expected_truncation = None if cut in bounds or cut == len(full) else bounds[complete]
    assert reader.truncated_at == expected_truncation
    assert (reader.index is not None) == (cut == len(full))


def test_index_gives_len_and_random_access_without_scanning(small_file: tuple) -> None:
    path, bounds, written = small_file
    reader = RecordReader(path)
    assert reader.index == [(1, bounds[0]), (2, bounds[1]), (3, bounds[2])]
    assert len(reader) == 3
    assert reader.read_at(bounds[2]).nbytes == bounds[3] - bounds[2]
    with pytest.raises(RecordingError, match=f"no record starts at byte offset {bounds[0] + 1}"):
        reader.read_at(bounds[0] + 1)
    assert reader.header["index_on_close"] is True


def test_corrupt_index_is_ignored_and_named(small_file: tuple, tmp_path: Path) -> None:
    path, bounds, written = small_file
    data = path.read_bytes()
    bad = tmp_path / "bad-index.tsrec"
    for pos in range(bounds[-1], len(data)):
        corrupt = bytearray(data)
        corrupt[pos] ^= 0x01
        bad.write_bytes(corrupt)
        reader = RecordReader(bad)
        assert reader.index is None, pos
        try:
            records = list(reader)
        except RecordingError as exc:  # only a corrupted index magic reads as a bad record
            assert pos < bounds[-1] + 4 and "bad record magic" in str(exc), pos
            continue
        assert [r.l1_id for r in records] == [1, 2, 3], pos
        assert reader.truncated_at == bounds[-1], pos
        # A changed footer magic hides the trailer altogether: then nothing names a problem.
        assert reader.index_problem is not None or pos >= len(data) - 8, pos


def test_index_lying_about_the_records_is_refused(tmp_path: Path) -> None:
    import msgpack

    path = tmp_path / "lie.tsrec"
    _, records_end = write_recording(path, [(7, {}, []), (8, {}, [])])
    data = path.read_bytes()[:records_end]
    index = msgpack.packb([[7, records_end - 10]])
    footer = struct.pack("<QI8s", len(index), zlib.crc32(index), b"TSIDXv1\n")
    path.write_bytes(data + b"TSIX" + index + footer)
    reader = RecordReader(path)
    assert reader.index is None
    assert "does not start at the first record" in reader.index_problem
    assert [r.l1_id for r in reader] == [7, 8]


def test_source_is_kept_in_the_header(tmp_path: Path) -> None:
    path = tmp_path / "s.tsrec"
    with RecordWriter(path, 1, "replay", {}, source={"kind": "cms-ispy", "file": "x.ig"}):
        pass
    reader = RecordReader(path)
    assert reader.header["source"] == {"kind": "cms-ispy", "file": "x.ig"}
    assert len(reader) == 0 and reader.index == []
