import pytest

from trigger_sim.errors import ConfigError
from trigger_sim.planning.spec import load_spec


def test_a_spec_file_loads_with_its_kills(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text('events = 500\n[arrivals]\nrate_hz = 2e5\n[farm]\nservers = 3\n'
                    '[[farm.kills]]\nserver = 2\nat_s = 0.5\nrestart_s = 2.0\n')
    spec = load_spec(path)
    assert spec.events == 500 and spec.arrivals.rate_hz == 2e5 and spec.farm.kills[0].server == 2


@pytest.mark.parametrize("text, message", [
    ("[farm]\ngpus = 3\n", r"\[farm\]: unknown key\(s\) gpus"),
    ("[farms]\n", "unknown key"),
    ("[farm]\nservers = 1\n[[farm.kills]]\nserver = 4\n", "server 4 is not in a pool of 1"),
    ("[arrivals]\npattern = \"wave\"\n", "arrivals.pattern must be one of"),
])
def test_bad_keys_and_values_are_named_with_the_file(tmp_path, text, message):
    path = tmp_path / "plan.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_spec(path)


def test_plan_toml_lists_exactly_the_builtin_defaults():
    from pathlib import Path

    from trigger_sim.planning.spec import PlanSpec

    assert load_spec(Path(__file__).resolve().parents[3] / "configs" / "plan.toml") == PlanSpec()
