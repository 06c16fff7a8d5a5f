"""The per-event table: one row per decided event, kept column by column (no I/O).

Analysts want every event's decision, timings and sizes in a table (pandas, ROOT); the
collector adds one `EventRow` per event the ledger counted and the run writes the columns
at its end (`trigger_sim.event_table_io`). Numbers go into typed arrays (8 bytes or less a
value) and text into dictionary codes (4 bytes a value: outcomes, streams, workers and hosts
repeat), so a long run's table costs about 250 bytes per event in memory.

Nulls: a step that did not run has NaN in its `<step>_ms` column, and a size or attempt that
is not known (an event that never reached a worker) has -1; `null_masks` says where.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trigger_sim.models.registry import MODEL_NAMES

SIZES = ("n_hits", "n_edges", "n_tracks", "n_jets", "n_clusters")
UNKNOWN = -1  # a size or attempt that is not known
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
NAN = float("nan")
_NO_SIZES = [UNKNOWN] * len(SIZES)
SERVED_PATHS = ("triton", "expired")  # the model's call went to the server (expired: its answer came too late)


@dataclass(slots=True)
class EventRow:
    """One decided event, as the collector knows it. `steps_ms`: the steps that ran (others
    are null); `model_paths`: model -> inference path; `sizes`: None when not known."""

    l1_id: int
    l1_time_ns: int
    decided_ns: int
    outcome: str
    chains: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()
    debug_reason: str = ""  # the reason's category, as the summary's debug_streams count it
    debug_detail: str = ""  # the whole reason
    steps_ms: Mapping[str, float] = field(default_factory=dict)
    inference_path: str = "none"
    fallback_reason: str = ""
    model_paths: Mapping[str, str] = field(default_factory=dict)
    worker: str = ""
    host: str = ""
    attempt: int = UNKNOWN
    forced: bool = False
    sizes: Mapping[str, int] | None = None


class _Codes:
    """A text (or tuple-of-text) column as dictionary codes: values in first-seen order."""

    def __init__(self) -> None:
        self.codes = array("i")
        self.values: list[Any] = []
        self._index: dict[Any, int] = {}

    def append(self, value: Any) -> None:
        code = self._index.get(value)
        if code is None:
            code = self._index[value] = len(self.values)
            self.values.append(value)
        self.codes.append(code)


class EventTable:
    """Columnar accumulator of `EventRow`s.

    `steps`: the step names, one `<step>_ms` column each (the summary's latency order);
    `server`: the inference server's address, recorded per model where its call went there.
    """

    TEXT = ("outcome", "chains", "streams", "debug_reason", "debug_detail", "inference_path", "fallback_reason",
            "worker", "host")
    LISTS = ("chains", "streams")  # text columns whose values are tuples of text

    def __init__(self, steps: Sequence[str], server: str = "", models: Sequence[str] = MODEL_NAMES):
        self.steps = tuple(steps)
        self.models = tuple(models)
        self.server = server
        self._ints = {name: array("q") for name in ("l1_id", "l1_time_ns", "decided_ns", "attempt", *SIZES)}
        self._forced = array("b")
        self._steps_ms = {step: array("d") for step in self.steps}
        self._text = {name: _Codes() for name in self.TEXT}
        self._model_text = {f"{m}_{what}": _Codes() for m in self.models for what in ("path", "server")}
        # the same columns in the order `add` fills them
        self._int_columns = list(self._ints.values())
        self._step_columns = list(self._steps_ms.values())
        self._text_columns = [self._text[name] for name in self.TEXT]
        self._model_columns = [(self._model_text[f"{m}_path"], self._model_text[f"{m}_server"]) for m in self.models]

    def __len__(self) -> int:
        return len(self._ints["l1_id"])

    def add(self, row: EventRow) -> None:
        """Append one row. Every value is converted first, so a value of the wrong type
        raises before any column grew: the columns always stay the same length."""
        sizes = _NO_SIZES if row.sizes is None else [row.sizes.get(s, UNKNOWN) for s in SIZES]
        ints = [int(row.l1_id), int(row.l1_time_ns), int(row.decided_ns), int(row.attempt), *map(int, sizes)]
        if not INT64_MIN <= min(ints) <= max(ints) <= INT64_MAX:
            raise OverflowError(f"event {row.l1_id}: a number beyond 64 bits")
        get = row.steps_ms.get
        steps = [float(get(step, NAN)) for step in self.steps]
        text = (str(row.outcome), tuple(map(str, row.chains)), tuple(map(str, row.streams)), str(row.debug_reason),
                str(row.debug_detail), str(row.inference_path), str(row.fallback_reason), str(row.worker), str(row.host))
        paths = [str(row.model_paths.get(model, "")) for model in self.models]
        forced = bool(row.forced)
        for column, value in zip(self._int_columns, ints):
            column.append(value)
        for column, value in zip(self._step_columns, steps):
            column.append(value)
        for column, value in zip(self._text_columns, text):
            column.append(value)
        for (path_column, server_column), path in zip(self._model_columns, paths):
            path_column.append(path)
            server_column.append(self.server if path in SERVED_PATHS else "")
        self._forced.append(forced)

    def column_names(self) -> list[str]:
        """Every column, in the order written."""
        return ["l1_id", "l1_time_ns", "decided_ns", "outcome", "chains", "streams", "debug_reason", "debug_detail",
                *(f"{s}_ms" for s in self.steps), "inference_path", "fallback_reason", *self._model_text,
                "worker", "host", "attempt", "forced", *SIZES]

    def numbers(self) -> dict[str, np.ndarray]:
        """The numeric columns as numpy arrays (copies: the table may still grow): int64,
        float64 and bool."""
        out: dict[str, np.ndarray] = {name: _copy(col, np.int64) for name, col in self._ints.items()}
        out.update({f"{s}_ms": _copy(col, np.float64) for s, col in self._steps_ms.items()})
        out["forced"] = _copy(self._forced, np.int8).astype(bool)
        return out

    def text(self) -> dict[str, tuple[np.ndarray, list[Any]]]:
        """The text columns as (int32 codes, values): row i holds values[codes[i]]; the
        values of `chains` and `streams` are tuples of text."""
        cols = {**self._text, **self._model_text}
        return {name: (_copy(c.codes, np.int32), list(c.values)) for name, c in cols.items()}

    def null_masks(self) -> dict[str, np.ndarray]:
        """Where a numeric column's value is not known: NaN steps, -1 sizes and attempts."""
        nums = self.numbers()
        masks = {f"{s}_ms": np.isnan(nums[f"{s}_ms"]) for s in self.steps}
        masks.update({name: nums[name] == UNKNOWN for name in ("attempt", *SIZES)})
        return masks

    def rows(self) -> list[dict[str, Any]]:
        """Every row as a dict of plain values (None where not known): for tests and small tables."""
        nums, text, masks = self.numbers(), self.text(), self.null_masks()
        out = []
        for i in range(len(self)):
            row: dict[str, Any] = {}
            for name in self.column_names():
                if name in text:
                    codes, values = text[name]
                    row[name] = values[codes[i]]
                elif name in masks and masks[name][i]:
                    row[name] = None
                else:
                    row[name] = nums[name][i].item()
            out.append(row)
        return out


def _copy(column: array, dtype: type) -> np.ndarray:
    """A numpy copy of a typed array (a view would keep the array from growing)."""
    return np.frombuffer(column, dtype).copy() if len(column) else np.empty(0, dtype)
