"""How a run ends: exit status 0 only when the run is known complete; the summary to --json."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from farm.run_end import finish_run, incomplete_reasons


def _summary(known=True, lost=0, problems=()):
    return {"events": {"l1_count_known": known, "lost": lost}, "problems": list(problems)}


def test_exit_status_zero_only_when_the_run_is_known_complete():
    assert incomplete_reasons(_summary()) == []
    assert incomplete_reasons(_summary(known=False))
    assert incomplete_reasons(_summary(lost=1))
    assert incomplete_reasons(_summary(problems=["worker-0.0 exited with code -9"]))


def test_finish_run_writes_the_summary_and_exits_with_its_status(tmp_path):
    out = tmp_path / "run.json"
    with pytest.raises(SystemExit) as done:
        finish_run(_summary(), str(out), Console(file=io.StringIO()))
    assert done.value.code == 0 and json.loads(out.read_text())["events"]["lost"] == 0
    with pytest.raises(SystemExit) as done:
        finish_run(_summary(lost=2), None, Console(file=io.StringIO()))
    assert done.value.code == 1
