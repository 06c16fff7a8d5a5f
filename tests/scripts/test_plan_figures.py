"""scripts/plan_figures.sh: the README's sizing question and sweep, whatever the sizing's answer."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from trigger_sim.config import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "plan_figures.sh"


def _fake_trigger_sim(tmp_path: Path, sizing_exit: int) -> Path:
    """A stand-in for trigger-sim: `plan` (the sizing) prints a table and exits as asked, `plan sweep` succeeds."""
    fake = tmp_path / "trigger-sim"
    fake.write_text("#!/usr/bin/env bash\n"
                    f'if [ "$2" = sweep ]; then echo sweep table; exit 0; fi\necho sizing table; exit {sizing_exit}\n')
    fake.chmod(0o755)
    return fake


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sizing_exit", [0, 1])
def test_a_sizing_question_without_answer_still_gives_its_table_and_the_sweep(tmp_path, sizing_exit):
    """`plan` exits 1 when no pool keeps up: that is the question's answer, not a failure."""
    out = tmp_path / "plan"
    env = {**os.environ, "TRIGGER_SIM": str(_fake_trigger_sim(tmp_path, sizing_exit)), "PLAN_FIGURES_DIR": str(out)}
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=50, env=env)
    assert done.returncode == 0, done.stderr
    assert (out / "sizing.txt").read_text() == "sizing table\n"
    assert (out / "sweep" / "sweep.txt").read_text() == "sweep table\n"
    assert "sizing" in (out / "figures-run.txt").read_text()


@pytest.mark.timeout(60)
def test_a_failing_plan_stops_the_script(tmp_path):
    out = tmp_path / "plan"
    env = {**os.environ, "TRIGGER_SIM": str(_fake_trigger_sim(tmp_path, 2)), "PLAN_FIGURES_DIR": str(out)}
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=50, env=env)
    assert done.returncode == 2 and "plan failed (exit 2)" in done.stderr
    assert not (out / "figures-run.txt").exists()
