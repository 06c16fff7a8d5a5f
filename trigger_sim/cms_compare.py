"""Our chains beside the real CMS HLT paths, on imported CMS events (no sockets).

Every record of an imported file (`trigger-sim import ispy`) goes through `HltSequence`
exactly as in a worker (fragments re-encoded to wire frames, tagger on the local
fallback), with the detector configuration stored in the file and no time budget. Each
pair of `configs/cms_pairs.toml` sets one of our chains against CMS paths named without
their version suffix (`_v<N>`), with optional shell wildcards: CMS accepts when any
matching path that was run accepted. Per pair: both, ours only, CMS only, neither; events
where no matching path was run (or present) are counted apart, and so are events we sent
to a debug stream. Our thresholds apply to a different detector's response, so agreement
measures similarity, not correctness.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from trigger_sim.accounting import ACCEPTED, DEBUG
from trigger_sim.config import CONFIG_DIR, FarmConfig, from_mapping, read_toml, with_overrides
from trigger_sim.errors import ConfigError, TriggerSimError
from trigger_sim.hlt.sequence import EventResult, HltSequence
from trigger_sim.menu import Menu, load_menu
from trigger_sim.inference.factory import build_inference
from trigger_sim.recording import Record, RecordReader
from trigger_sim.wire import encode_fragment

DEFAULT_MENU = CONFIG_DIR / "menu_cms_compare.toml"
DEFAULT_PAIRS = CONFIG_DIR / "cms_pairs.toml"
OFFLINE_BUDGET_MS = 3_600_000.0  # replay is not a farm: no event may time out (numba loads on the first)
VERSION_SUFFIX = re.compile(r"_v\d+$")
CMS_PHYSICS_PREFIX = "HLT_"  # "CMS accepted anything": any HLT_ path (not DST_, AlCa_, HLTriggerFinalPath)

CMS_ACCEPT, CMS_REJECT, CMS_NOT_RUN = "accept", "reject", "not_run"


@dataclass(frozen=True)
class Pair:
    """One of our chains and the CMS paths it is compared with; no chain: not comparable."""

    cms: tuple[str, ...]
    chain: str = ""
    not_comparable: str = ""  # why no chain of ours corresponds (e.g. no muon system)

    def __post_init__(self) -> None:
        if not self.cms or not all(self.cms):
            raise ValueError("cms must list at least one path name")
        if bool(self.chain) == bool(self.not_comparable):
            raise ValueError("give either chain or not_comparable (with its reason)")

    @property
    def label(self) -> str:
        return f"{self.chain or '-'} vs {' | '.join(self.cms)}"


def load_pairs(path: str | Path, menu: Menu | None = None) -> tuple[Pair, ...]:
    """Read a pairs TOML file ([[pair]] tables); with `menu`, every chain must be in it."""
    data = read_toml(Path(path))
    tables = data.get("pair")
    if set(data) - {"pair"} or not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{path}: a pairs file holds only [[pair]] tables, at least one")
    pairs = tuple(from_mapping(Pair, t, str(path), f"pair[{i}].") for i, t in enumerate(tables))
    if menu is not None:
        known = {c.name for c in menu.chains}
        for i, p in enumerate(pairs):
            if p.chain and p.chain not in known:
                raise ConfigError(f"{path}: pair[{i}].chain {p.chain!r} is not a chain of the menu ({', '.join(sorted(known))})")
    return pairs


def base_name(path_name: str) -> str:
    """A CMS path name without its version suffix: HLT_PFJet320_v8 -> HLT_PFJet320."""
    return VERSION_SUFFIX.sub("", path_name)


def matching_paths(patterns: Iterable[str], path_names: Iterable[str]) -> list[str]:
    """The path names whose versionless name matches one of `patterns` (shell wildcards)."""
    patterns = tuple(patterns)
    return [n for n in path_names if any(fnmatchcase(base_name(n), p) for p in patterns)]


def cms_status(patterns: Iterable[str], hlt: dict[str, bool], not_run: Iterable[str] = ()) -> tuple[str, list[str]]:
    """CMS_ACCEPT, CMS_REJECT or CMS_NOT_RUN (no matching path run in the event), and the paths that ran."""
    skipped = set(not_run)
    ran = [n for n in matching_paths(patterns, hlt) if n not in skipped]
    if not ran:
        return CMS_NOT_RUN, ran
    return (CMS_ACCEPT if any(hlt[n] for n in ran) else CMS_REJECT), ran


@dataclass
class PairCounts:
    """Event counts of one pair; n counts events decided on both sides."""

    pair: Pair
    both: int = 0
    ours_only: int = 0
    cms_only: int = 0
    neither: int = 0
    cms_not_run: int = 0  # no matching CMS path run (or present) in the event
    ours_debug: int = 0  # our sequence sent the event to a debug stream
    cms_accepted: int = 0  # CMS accepts, whether or not we decided (for not-comparable pairs)
    cms_paths: set[str] = field(default_factory=set)  # CMS path names matched, with versions

    @property
    def n(self) -> int:
        return self.both + self.ours_only + self.cms_only + self.neither

    @property
    def agreement(self) -> float | None:
        return (self.both + self.neither) / self.n if self.n and self.pair.chain else None

    def add(self, ours: tuple[str, ...] | None, hlt: dict[str, bool], not_run: Iterable[str]) -> None:
        """Count one event: `ours` are our passed chains, None when our outcome was a debug stream."""
        status, ran = cms_status(self.pair.cms, hlt, not_run)
        self.cms_paths.update(ran)
        self.cms_accepted += status == CMS_ACCEPT
        if not self.pair.chain:
            return
        if ours is None:
            self.ours_debug += 1
        elif status == CMS_NOT_RUN:
            self.cms_not_run += 1
        else:
            mine, theirs = self.pair.chain in ours, status == CMS_ACCEPT
            if mine and theirs:
                self.both += 1
            elif mine:
                self.ours_only += 1
            elif theirs:
                self.cms_only += 1
            else:
                self.neither += 1

    def merge(self, other: PairCounts) -> None:
        for name in ("both", "ours_only", "cms_only", "neither", "cms_not_run", "ours_debug", "cms_accepted"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.cms_paths |= other.cms_paths

    def to_dict(self) -> dict[str, Any]:
        return {"pair": self.pair.label, "chain": self.pair.chain, "cms": list(self.pair.cms),
                "not_comparable": self.pair.not_comparable, "n": self.n, "both": self.both,
                "ours_only": self.ours_only, "cms_only": self.cms_only, "neither": self.neither,
                "agreement": self.agreement, "cms_not_run": self.cms_not_run, "ours_debug": self.ours_debug,
                "cms_accepted": self.cms_accepted, "cms_paths_matched": sorted(self.cms_paths)}


@dataclass
class FileComparison:
    """One file: events, our decisions and CMS's, and the counts of every pair."""

    file: str
    pairs: list[PairCounts]
    events: int = 0
    decided: int = 0  # events that got an outcome from our sequence (must equal events)
    ours_accepted: int = 0
    ours_debug: int = 0
    cms_accepted: int = 0  # events with any HLT_ path accepted
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "pairs"}
        return out | {"pairs": [p.to_dict() for p in self.pairs]}


def offline_sequence(config: FarmConfig, menu: Menu) -> HltSequence:
    """The worker's sequence without a time budget, models on the local fallback (same weights)."""
    config = with_overrides(config, worker={"budget_ms": OFFLINE_BUDGET_MS})
    return HltSequence(config, menu, build_inference(config, None))


def recording_config(reader: RecordReader) -> FarmConfig:
    """The detector configuration the file was written with (fragments are packed for it)."""
    detector = reader.header.get("detector")
    if not isinstance(detector, dict):
        raise TriggerSimError(f"{reader.path}: the file header has no detector configuration")
    return from_mapping(FarmConfig, detector, f"{reader.path} (header)")


def decide_records(records: Iterable[Record], sequence: HltSequence) -> Iterator[tuple[Record, EventResult]]:
    """Each record with the outcome of our sequence on its fragments."""
    for record in records:
        yield record, sequence.process(record.l1_id, [encode_fragment(f) for f in record.fragments])


def compare_records(name: str, records: Iterable[Record], sequence: HltSequence, pairs: Iterable[Pair]) -> FileComparison:
    """Decide every record and count it for every pair; records must carry `cms_hlt`."""
    started = time.perf_counter()
    result = FileComparison(name, [PairCounts(p) for p in pairs])
    for record, outcome in decide_records(records, sequence):
        result.events += 1
        hlt = record.meta.get("cms_hlt")
        if not isinstance(hlt, dict):
            raise TriggerSimError(f"{name}: record of l1_id {record.l1_id} has no CMS HLT decisions "
                                  "(is this an imported CMS file? see `trigger-sim import ispy`)")
        not_run = set(record.meta.get("cms_hlt_not_run", ()))  # absent in files imported before it was kept
        result.decided += 1
        result.ours_accepted += outcome.outcome == ACCEPTED
        result.ours_debug += outcome.outcome == DEBUG
        result.cms_accepted += any(v for k, v in hlt.items() if k.startswith(CMS_PHYSICS_PREFIX) and k not in not_run)
        ours = None if outcome.outcome == DEBUG else outcome.chains
        for counts in result.pairs:
            counts.add(ours, hlt, not_run)
    result.elapsed_s = time.perf_counter() - started
    return result


def compare_file(path: str | Path, menu: Menu, pairs: Iterable[Pair]) -> FileComparison:
    """Compare one imported recording; every record gets a decision (checked)."""
    reader = RecordReader(path)
    expected = len(reader)
    result = compare_records(str(path), reader, offline_sequence(recording_config(reader), menu), pairs)
    if reader.truncated_at is not None:  # imports are renamed into place when complete: this is damage
        raise TriggerSimError(f"{path}: cut short at byte {reader.truncated_at}; import it again")
    assert result.decided == result.events == expected, f"{path}: decided {result.decided} of {expected} records"
    return result


def total(files: list[FileComparison], pairs: Iterable[Pair]) -> list[PairCounts]:
    """Pair counts summed over files."""
    sums = [PairCounts(p) for p in pairs]
    for f in files:
        for acc, counts in zip(sums, f.pairs):
            acc.merge(counts)
    return sums


@dataclass
class Comparison:
    """Every file's comparison and the pair counts summed over files."""

    menu: str
    pairs_file: str
    files: list[FileComparison]
    total: list[PairCounts]

    def to_dict(self) -> dict[str, Any]:
        return {"menu": self.menu, "pairs_file": self.pairs_file, "files": [f.to_dict() for f in self.files],
                "total": [p.to_dict() for p in self.total]}


def compare_files(paths: Iterable[str | Path], menu_path: str | Path | None = None,
                  pairs_path: str | Path | None = None) -> Comparison:
    """Compare every file with the menu and pairs given (default: the comparison menu and pairs)."""
    menu_path, pairs_path = Path(menu_path or DEFAULT_MENU), Path(pairs_path or DEFAULT_PAIRS)
    menu = load_menu(menu_path)
    pairs = load_pairs(pairs_path, menu)
    files = [compare_file(p, menu, pairs) for p in paths]
    return Comparison(str(menu_path), str(pairs_path), files, total(files, pairs))
