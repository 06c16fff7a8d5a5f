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
    ("[farm]\ncpu_slice_ms = -1\n", "cpu_slice_ms must be >= 0"),
    ("[farm]\n[[farm.kills]]\nrestart_cpu_cores = -0.5\n", "restart_cpu_cores, restart_cpu_s and restart_processes must be >= 0"),
    ("[farm]\nhost_cores = 2\n[[farm.kills]]\nrestart_s = 0.8\nrestart_cpu_s = 1.2\nrestart_processes = 2.5\n",
     "restart_processes must be a whole number"),
    ("[farm]\nhost_cores = 2\n[[farm.kills]]\nrestart_s = 0.8\nrestart_processes = 3\n", "restart_processes needs restart_cpu_s > 0"),
    ("[farm]\n[[farm.kills]]\nrestart_s = 0.8\nrestart_cpu_s = 1.2\nrestart_processes = 3\n", "restart_processes needs farm.host_cores"),
    ("[farm]\nhost_cores = 2\n[[farm.kills]]\nrestart_cpu_s = 1.2\nrestart_processes = 3\n", "restart_processes needs restart_s"),
    ("[farm]\nhost_cores = 2\n[[farm.kills]]\nrestart_s = 0.8\nrestart_cpu_s = 1.2\nrestart_processes = 3\nrestart_cpu_cores = 1.0\n",
     "two ways of the same CPU"),
    ("[farm]\nreconnect_jitter = 1.0\n", "reconnect_jitter in"),
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


def test_a_farm_with_per_model_deadlines_gives_the_model_its_longest():
    from trigger_sim.config import load_config, with_overrides
    from trigger_sim.planning.spec import from_farm_config

    config = with_overrides(load_config(None), inference={"timeout_ms": 0.0})
    longest = max(1e3 * config.inference.deadline_s(m) for m in config.inference.models)
    assert from_farm_config(config, 2).timeout_ms == longest > 0
    assert from_farm_config(with_overrides(config, inference={"timeout_ms": 70.0}), 2).timeout_ms == 70.0


def test_a_farm_with_event_slots_is_modelled_with_them():
    from trigger_sim.config import load_config, with_overrides
    from trigger_sim.planning.spec import from_farm_config

    config = load_config(None)
    assert from_farm_config(config, 2).slots_per_worker == config.worker.slots == 1
    assert from_farm_config(with_overrides(config, worker={"slots": 4}), 2).slots_per_worker == 4
