"""The gRPC attempt the rejoin measurement prints beside each restart."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "rejoin_after_restart.py"


def _script():
    spec = importlib.util.spec_from_file_location("rejoin_after_restart", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("up_s", "backoff_ms", "attempt_s"), [
    (0.7, 0.0, 1.0), (1.2, 0.0, 2.6), (3.0, 0.0, 5.16), (6.0, 0.0, 9.256),  # gRPC's: 1, +1.6, +2.56, +4.096 s
    (0.25, 100.0, 0.3), (3.05, 100.0, 3.1),  # a fixed 100 ms
])
def test_the_first_attempt_after_the_server_is_up(up_s, backoff_ms, attempt_s):
    assert _script().first_attempt_after_s(up_s, backoff_ms) == pytest.approx(attempt_s)
