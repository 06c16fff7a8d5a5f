"""Reading CMS iSpy event-display files (.ig): zip archives of JSON-like event texts.

An .ig file holds a `Header` member (the CMSSW version, as a JSON string) and one member
per event, `Events/Run_<run>/Event_<event>`, whose text is JSON except for bare `nan`
(and, in some producers, `inf` and single-quoted strings). `to_json` rewrites only those
tokens, in one linear pass that never looks inside a string twice, and `json.loads` does
the rest: no eval. Every failure is an `IspyError` that names the file and the member.

Each event has `Types` (per collection, its columns as [name, type] pairs) and
`Collections` (per collection, its rows); `IspyEvent` gives column access by name.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trigger_sim.errors import IspyError

MAX_MEMBER_BYTES = 256 * 1024 * 1024  # real events are below 1 MB; refuse zip bombs
# What zipfile raises for damaged or unsupported archives (zlib.error: corrupt deflate data).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError, OSError)
EVENT_MEMBER = re.compile(r"Events/Run_(\d+)/Event_(\d+)")

# Strings are matched whole (so nothing inside them is rewritten); a quote that does not
# start a complete string matches alone and is an error. The lookahead lets the regex
# engine skip quickly over the numbers that make up most of an event.
_TOKEN = re.compile(
    r"""(?=["'A-Za-z_-])(?:
        (?P<dq>"[^"\\]*(?:\\.[^"\\]*)*")
      | (?P<sq>'[^'\\]*(?:\\.[^'\\]*)*')
      | (?P<quote>["'])
      | (?<![\w.])(?P<word>-?[A-Za-z_]\w*)   # not the "e" of 1e-05
    )""",
    re.X | re.S,
)
_SINGLE_ESCAPES = re.compile(r"""\\(.)|\"""", re.S)
_WORDS = {
    "nan": "NaN", "-nan": "NaN", "NaN": "NaN", "-NaN": "NaN",
    "inf": "Infinity", "-inf": "-Infinity", "Infinity": "Infinity", "-Infinity": "-Infinity",
    "true": "true", "false": "false", "null": "null",
}


def _single_to_double(token: str) -> str:
    """A single-quoted string as a JSON string: \\' becomes ', a bare " is escaped."""
    def fix(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return '\\"'
        return "'" if m.group(1) == "'" else m.group(0)

    return '"' + _SINGLE_ESCAPES.sub(fix, token[1:-1]) + '"'


def to_json(text: str, where: str) -> str:
    """Rewrite iSpy text as JSON for `json.loads` (NaN and Infinity allowed), in linear time."""
    def rewrite(m: re.Match[str]) -> str:
        if m.group("dq") is not None:
            return m.group("dq")
        if m.group("sq") is not None:
            return _single_to_double(m.group("sq"))
        if m.group("quote") is not None:
            raise IspyError(f"{where}: unterminated string at character {m.start()}")
        word = _WORDS.get(m.group("word"))
        if word is None:
            raise IspyError(
                f"{where}: unexpected bare word {m.group('word')[:40]!r} at character {m.start()}"
            )
        return word

    return _TOKEN.sub(rewrite, text)


def parse_text(data: bytes, where: str) -> Any:
    """Parse one member's bytes (UTF-8, iSpy's JSON dialect) into Python objects."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IspyError(f"{where}: not UTF-8 text ({exc})") from exc
    try:
        return json.loads(to_json(text, where))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise IspyError(f"{where}: does not parse as iSpy JSON: {exc}") from exc


@dataclass(frozen=True)
class IspyEvent:
    """One event: its member name, the column names and the rows of every collection."""

    member: str
    columns: dict[str, list[str]]
    collections: dict[str, list[list[Any]]]

    def has(self, collection: str) -> bool:
        return collection in self.collections and collection in self.columns

    def rows(self, collection: str) -> list[list[Any]]:
        """Rows of `collection`; IspyError when the event does not have it."""
        if not self.has(collection):
            raise IspyError(
                f"{self.member}: no collection {collection} (present: "
                f"{', '.join(sorted(self.collections)) or 'none'})"
            )
        return self.collections[collection]

    def _index(self, collection: str, column: str) -> int:
        self.rows(collection)  # IspyError when the collection is missing
        names = self.columns[collection]
        if column not in names:
            raise IspyError(
                f"{self.member}: collection {collection} has no column {column!r} "
                f"(columns: {', '.join(names)})"
            )
        return names.index(column)

    def column(self, collection: str, column: str, width: int = 0) -> np.ndarray:
        """A numeric column as float64: shape (n,), or (n, width) for vectors (v3d: 3)."""
        rows = self.rows(collection)
        i = self._index(collection, column)
        shape = (len(rows), width) if width else (len(rows),)
        try:
            values = np.array([row[i] for row in rows], dtype=np.float64)
            return values.reshape(shape)
        except (TypeError, ValueError, OverflowError) as exc:
            raise IspyError(
                f"{self.member}: column {collection}.{column} is not numeric "
                f"{'vectors of ' + str(width) if width else 'scalars'}: {exc}"
            ) from exc

    def ints(self, collection: str, column: str) -> list[int]:
        """An integer column; IspyError when a value is not an integer."""
        i = self._index(collection, column)
        values = [row[i] for row in self.rows(collection)]
        if not all(type(v) is int for v in values):
            raise IspyError(f"{self.member}: column {collection}.{column} holds non-integers")
        return values

    def strings(self, collection: str, column: str) -> list[str]:
        """A text column; IspyError when a value is not a string."""
        i = self._index(collection, column)
        values = [row[i] for row in self.rows(collection)]
        if not all(isinstance(v, str) for v in values):
            raise IspyError(f"{self.member}: column {collection}.{column} holds non-strings")
        return values


def event_from_object(content: Any, member: str) -> IspyEvent:
    """Check the shape of a parsed event (Types, Collections, rows as wide as their types)."""
    if not isinstance(content, dict):
        raise IspyError(f"{member}: an event must be a JSON object, got {type(content).__name__}")
    types, collections = content.get("Types"), content.get("Collections")
    if not isinstance(types, dict) or not isinstance(collections, dict):
        raise IspyError(f"{member}: event has no 'Types' and 'Collections' objects")
    columns: dict[str, list[str]] = {}
    for name, spec in types.items():
        if not isinstance(spec, list) or not all(
            isinstance(c, list) and len(c) == 2 and all(isinstance(x, str) for x in c) for c in spec
        ):
            raise IspyError(f"{member}: Types.{name} is not a list of [name, type] pairs")
        columns[name] = [c[0] for c in spec]
    for name, rows in collections.items():
        width = len(columns.get(name, ()))
        if not isinstance(rows, list) or not all(
            isinstance(r, list) and (name not in columns or len(r) == width) for r in rows
        ):
            raise IspyError(
                f"{member}: Collections.{name} is not a list of rows of {width} values"
            )
    return IspyEvent(member=member, columns=columns, collections=collections)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    if info.file_size > MAX_MEMBER_BYTES:
        raise IspyError(f"{where}: {info.file_size} bytes, limit is {MAX_MEMBER_BYTES}")
    try:
        return archive.read(info)
    except _ZIP_ERRORS as exc:
        raise IspyError(f"{where}: cannot be read from the archive: {exc}") from exc


class IspyFile:
    """An opened .ig file: `cmssw_version`, `event_members`, and iteration over `IspyEvent`s."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._archive = zipfile.ZipFile(self.path)
        except FileNotFoundError as exc:
            raise IspyError(f"{self.path}: no such file") from exc
        except _ZIP_ERRORS as exc:
            raise IspyError(
                f"{self.path}: not a zip archive, or a damaged one ({exc}); an iSpy .ig file "
                "is a zip with a Header and Events/Run_<run>/Event_<event> members"
            ) from exc
        infos = self._archive.infolist()
        self._events = [i for i in infos if EVENT_MEMBER.fullmatch(i.filename)]
        if not self._events:
            self._archive.close()
            raise IspyError(f"{self.path}: no Events/Run_<run>/Event_<event> members in the zip")
        header = next((i for i in infos if i.filename == "Header"), None)
        self.cmssw_version = ""
        if header is not None:
            value = parse_text(_read_member(self._archive, header, self._where(header)),
                               self._where(header))
            self.cmssw_version = value if isinstance(value, str) else json.dumps(value)

    def _where(self, info: zipfile.ZipInfo) -> str:
        return f"{self.path}: member {info.filename}"

    @property
    def event_members(self) -> list[str]:
        return [i.filename for i in self._events]

    @property
    def runs(self) -> set[int]:
        """CMS run numbers named by the event members."""
        return {int(m.group(1)) for n in self.event_members if (m := EVENT_MEMBER.fullmatch(n))}

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[IspyEvent]:
        for info in self._events:
            where = self._where(info)
            yield event_from_object(parse_text(_read_member(self._archive, info, where), where), where)

    def close(self) -> None:
        self._archive.close()

    def __enter__(self) -> IspyFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
