"""Reading the CSV tables of the TrackML format into numpy columns, with exact error places.

A TrackML table is plain comma-separated text: a header line naming the columns, then one
line per row, no quoting (every value is a number). Files may be gzip-compressed
(`.csv.gz`). Columns are found by name, so their order does not matter and extra columns
are ignored. Every failure is a `TrackmlError` naming the file, and where it applies the
line (1 is the header) and the column (1-based, with its name), so a broken line of a
dataset can be found and fixed.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, Literal

import numpy as np

from trigger_sim.errors import ImportDataError

MAX_TABLE_BYTES = 1024 * 1024 * 1024  # real TrackML tables are below 50 MB; refuse gzip bombs
_READ_CHUNK_BYTES = 1 << 20
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Kind = Literal["int", "float"]


class TrackmlError(ImportDataError):
    """A TrackML event cannot be imported: a file is unreadable, a column is missing, a value
    is not a number, or the event's tables contradict each other (the message says where)."""


@dataclass(frozen=True)
class Table:
    """One parsed table: its file name, header and typed columns (int64 or float64 arrays).

    Row `i` of every column is on line `i + 2` of the file (line 1 is the header).
    """

    where: str
    header: tuple[str, ...]
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def place(self, row: int, column: str) -> str:
        """'FILE: line L, column C (NAME)' for row `row` of `column`."""
        return f"{self.where}: line {row + 2}, column {self.header.index(column) + 1} ({column})"

    def error(self, row: int, column: str, message: str) -> TrackmlError:
        return TrackmlError(f"{self.place(row, column)}: {message}")


def read_file_bytes(path: str | os.PathLike[str]) -> bytes:
    """The content of a table file, decompressed when its name ends in `.gz`."""
    path = Path(path)
    try:
        if path.suffix != ".gz":
            size = path.stat().st_size
            if size > MAX_TABLE_BYTES:
                raise TrackmlError(f"{path}: {size} bytes, limit is {MAX_TABLE_BYTES}")
            return path.read_bytes()
        chunks, total = [], 0
        with gzip.open(path, "rb") as f:
            while chunk := f.read(_READ_CHUNK_BYTES):
                total += len(chunk)
                if total > MAX_TABLE_BYTES:
                    raise TrackmlError(f"{path}: more than {MAX_TABLE_BYTES} bytes once decompressed")
                chunks.append(chunk)
        return b"".join(chunks)
    except FileNotFoundError as exc:
        raise TrackmlError(f"{path}: no such file") from exc
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise TrackmlError(f"{path}: not a complete gzip file ({exc}); decompress it or fetch it again") from exc
    except OSError as exc:
        raise TrackmlError(f"{path}: cannot be read ({exc})") from exc


def _lines(data: bytes, where: str) -> list[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TrackmlError(f"{where}: line {line}: not UTF-8 text (byte {exc.start}); a TrackML table is plain CSV") from exc
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if "\r" in text:
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    return lines


def _first_failure(values: list[str], convert: Callable[[str], Any]) -> int:
    for i, value in enumerate(values):
        try:
            convert(value)
        except (ValueError, OverflowError):
            return i
    return -1  # pragma: no cover - only called after a conversion failed


def _convert(values: list[str], kind: Kind, column: str, fail: Callable[[int, str, str], TrackmlError]) -> np.ndarray:
    """One column's strings as int64 or finite float64; errors name the first bad row."""
    convert: Callable[[str], Any] = int if kind == "int" else float
    try:
        numbers = list(map(convert, values))
    except (ValueError, OverflowError):
        i = _first_failure(values, convert)
        expected = "an integer" if kind == "int" else "a number"
        raise fail(i, column, f"value {values[i][:40]!r} is not {expected}") from None
    if kind == "int":
        if numbers and (min(numbers) < INT64_MIN or max(numbers) > INT64_MAX):
            i = next(i for i, v in enumerate(numbers) if not INT64_MIN <= v <= INT64_MAX)
            raise fail(i, column, f"value {values[i][:40]!r} does not fit a 64-bit integer")
        return np.array(numbers, dtype=np.int64)
    array = np.array(numbers, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(array))
    if len(bad):
        raise fail(int(bad[0]), column, f"value {values[bad[0]][:40]!r} is not a finite number")
    return array


def parse_table(data: bytes, where: str, spec: Mapping[str, Kind]) -> Table:
    """Parse CSV bytes into the columns named in `spec` (name -> "int" or "float")."""
    lines = _lines(data, where)
    if not lines:
        raise TrackmlError(f"{where}: empty file; expected a header line with the columns {', '.join(spec)}")
    header = tuple(name.strip() for name in lines[0].removeprefix("\ufeff").split(","))
    duplicates = sorted(name for name, n in Counter(header).items() if n > 1)
    if duplicates:
        raise TrackmlError(f"{where}: line 1: column {duplicates[0]!r} appears more than once in the header")
    missing = [name for name in spec if name not in header]
    if missing:
        raise TrackmlError(
            f"{where}: line 1: no column {missing[0]!r} in the header (found: {', '.join(header)[:200]}); "
            f"a TrackML table of this kind needs {', '.join(spec)}"
        )
    body, width = lines[1:], len(header)
    # Whole-text splitting (not a list per line) keeps a 600,000-line cells table near 0.3 s.
    commas = list(map(str.count, body, repeat(",")))
    if body and (min(commas) != width - 1 or max(commas) != width - 1):
        i = next(i for i, n in enumerate(commas) if n != width - 1)
        found = "an empty line" if body[i] == "" else f"{commas[i] + 1} values"
        raise TrackmlError(f"{where}: line {i + 2}: {found}, the header names {width} columns")
    tokens = ",".join(body).split(",") if body else []
    places = Table(where, header, {})  # for error messages while the columns are converted
    columns = {name: _convert(tokens[header.index(name)::width], kind, name, places.error)
               for name, kind in spec.items()}
    return Table(where, header, columns)
