"""Writing the per-event table: Parquet (pyarrow) by default, a ROOT file with a flat TTree
(uproot, an optional extra) when the name ends in `.root`.

Parquet keeps nulls (a step that did not run, a size not known) and lists (chains,
streams); a flat TTree has neither, so there steps not run are NaN, unknown numbers -1 and
chains and streams are text joined by commas. The file appears whole or not at all: it is
written beside its final name and renamed.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from trigger_sim.errors import TriggerSimError
from trigger_sim.event_table import EventTable

ROOT_SUFFIX = ".root"
TREE_NAME = "events"
LIST_SEPARATOR = ","  # chains and streams in a ROOT file
ROOT_INSTALL = "pip install -e '.[root]'"


def is_root(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ROOT_SUFFIX


def check_writable(path: str | Path) -> None:
    """Fail before a run rather than after it: a .root table needs uproot."""
    if is_root(path):
        _uproot()


def write_table(table: EventTable, path: str | Path) -> Path:
    """Write `table` to `path` (its folder is made); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        (_write_root if is_root(path) else _write_parquet)(table, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _write_parquet(table: EventTable, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    numbers, text, masks = table.numbers(), table.text(), table.null_masks()
    columns: dict[str, Any] = {}
    for name in table.column_names():
        if name in text:
            codes, values = text[name]
            kind = pa.list_(pa.string()) if name in EventTable.LISTS else pa.string()
            dictionary = pa.array([list(v) for v in values] if name in EventTable.LISTS else values, kind)
            columns[name] = dictionary.take(pa.array(codes))
        else:
            columns[name] = pa.array(numbers[name], mask=masks.get(name))
    pq.write_table(pa.table(columns), path, compression="zstd")


def _write_root(table: EventTable, path: Path) -> None:
    uproot = _uproot()
    numbers, text = table.numbers(), table.text()
    branches: dict[str, np.ndarray] = {}
    for name in table.column_names():
        if name in text:
            codes, values = text[name]
            flat = [LIST_SEPARATOR.join(v) for v in values] if name in EventTable.LISTS else values
            branches[name] = np.array(flat, dtype=object)[codes] if len(codes) else np.empty(0, dtype=object)
        else:
            branches[name] = numbers[name]
    with uproot.recreate(path) as out:
        tree = out.mktree(TREE_NAME, {name: ("string" if a.dtype == object else a.dtype) for name, a in branches.items()})
        if len(table):
            tree.extend({name: _root_array(a) for name, a in branches.items()})


def _root_array(values: np.ndarray) -> Any:
    """Text as an awkward array of strings (what uproot writes as a string branch)."""
    if values.dtype != object:
        return values
    import awkward

    return awkward.Array(values.tolist())


def _uproot() -> ModuleType:
    try:
        import uproot
    except ImportError:
        raise TriggerSimError(f"a .root events table needs uproot: {ROOT_INSTALL} (or give a .parquet name)") from None
    return uproot
