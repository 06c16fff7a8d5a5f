"""The importers' output: converted events into a recording that appears only when complete.

Every importer converts its events one by one and writes them with Level-1 ids 0, 1, 2...
The recording is written under a temporary name and renamed when the last event is in,
so a failed import leaves neither a partial recording nor a damaged older one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from trigger_sim.event import Fragment
from trigger_sim.recording import RecordWriter

PARTIAL_SUFFIX = ".partial"


class Converted(Protocol):
    """What an importer makes of one event: its fragments and its record metadata."""

    fragments: list[Fragment]
    meta: dict[str, Any]


T = TypeVar("T")
C = TypeVar("C", bound=Converted)


def refuse_existing(output: Path, overwrite: bool) -> None:
    """FileExistsError unless `output` is free or may be overwritten (checked before any work)."""
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; choose another name or overwrite it")


def write_recording(output: Path, items: Iterable[T], convert: Callable[[T, int], C], *, total: int,
                    run_number: int, stream: str, detector: dict[str, Any], source: dict[str, Any],
                    on_event: Callable[[C], None] = lambda converted: None,
                    progress: Callable[[int, int], None] | None = None) -> None:
    """Convert `items` in order (`convert(item, l1_id)`) and record them at `output`.

    `on_event` sees each converted event (for the import's summary), `progress(done, total)`
    follows the import. On any failure `output` is left as it was.
    """
    partial = output.with_name(output.name + PARTIAL_SUFFIX)
    try:
        with RecordWriter(partial, run_number, stream, detector, overwrite=True, source=source) as writer:
            for l1_id, item in enumerate(items):
                converted = convert(item, l1_id)
                writer.write_event(l1_id, converted.meta, converted.fragments)
                on_event(converted)
                if progress is not None:
                    progress(l1_id + 1, total)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
