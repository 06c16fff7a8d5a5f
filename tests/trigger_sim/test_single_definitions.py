"""Constants that several modules share are written once: the others import them.

Reads the source (without importing it: scripts need torch) and lists every module-level
assignment of the shared names and values."""

from __future__ import annotations

import ast
from pathlib import Path

from trigger_sim.accounting import OUTCOMES
from trigger_sim.validation import VALIDATION_MIX

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("trigger_sim", "farm", "scripts")
OUTCOME_NAMES = {"ACCEPTED", "REJECTED", "DEBUG"}


def module_constants() -> list[tuple[str, str, object]]:
    """(file, name, literal value) of every top-level `NAME = <literal>` in the packages."""
    out = []
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            for node in ast.parse(path.read_text(), str(path)).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    try:
                        value = ast.literal_eval(node.value)
                    except ValueError:
                        continue
                    out.append((str(path.relative_to(REPO_ROOT)), node.targets[0].id, value))
    return out


def test_event_outcomes_are_defined_only_by_the_ledger():
    places = {(f, name) for f, name, value in module_constants() if name in OUTCOME_NAMES and value in OUTCOMES}
    assert places == {("trigger_sim/accounting.py", name) for name in OUTCOME_NAMES}


def test_the_validation_process_mix_is_written_once():
    places = [(f, name) for f, name, value in module_constants() if value == VALIDATION_MIX]
    assert places == [("trigger_sim/validation.py", "VALIDATION_MIX")]
