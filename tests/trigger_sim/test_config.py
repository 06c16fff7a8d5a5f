"""Tests of trigger_sim.config: TOML farm configuration into frozen dataclasses."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from trigger_sim.config import (
    CONFIG_DIR,
    BuilderConfig,
    FarmConfig,
    ReadoutConfig,
    as_dict,
    load_config,
    with_overrides,
)
from trigger_sim.errors import ConfigError
from trigger_sim.menu import load_menu


def write(tmp_path: Path, text: str, name: str = "farm.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_defaults():
    cfg = load_config(None)
    assert cfg == FarmConfig()
    assert cfg.readout.rate_hz == 25.0 and cfg.readout.pattern == "poisson"
    assert cfg.builder.max_building == 512
    assert Path(cfg.menu) == CONFIG_DIR / "menu.toml"
    assert Path(cfg.menu).is_file()
    load_menu(cfg.menu)  # the default menu is valid


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == FarmConfig()


def test_file_overrides_only_what_it_names(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            "[readout]\nrate_hz = 250\npattern = \"constant\"\n"
            "[tracker]\nlayer_radii_mm = [30, 60.5, 90]\n"
            "[output]\nwrite_streams = false\n",
        )
    )
    assert cfg.readout == ReadoutConfig(rate_hz=250.0, pattern="constant")
    assert isinstance(cfg.readout.rate_hz, float)
    assert cfg.tracker.layer_radii_mm == (30.0, 60.5, 90.0)
    assert all(isinstance(r, float) for r in cfg.tracker.layer_radii_mm)
    assert cfg.output.write_streams is False
    assert cfg.builder == FarmConfig().builder
    assert cfg.calo == FarmConfig().calo


def test_unknown_top_level_key(tmp_path):
    path = write(tmp_path, "bogus = 1\n")
    msg = config_error(path)
    assert str(path) in msg and "'bogus'" in msg


def test_unknown_section(tmp_path):
    path = write(tmp_path, "[reaodut]\nrate_hz = 1.0\n")
    msg = config_error(path)
    assert str(path) in msg and "reaodut" in msg


def test_unknown_key_in_a_section_names_the_dotted_key(tmp_path):
    path = write(tmp_path, "[readout]\nrate_hz = 10.0\nrate = 5.0\n")
    msg = config_error(path)
    assert str(path) in msg
    assert "readout.rate" in msg
    assert "rate_hz" in msg  # the known keys are listed


@pytest.mark.parametrize(
    "text, key",
    [
        ('[readout]\nrate_hz = "100"\n', "readout.rate_hz"),  # string for number
        ("[readout]\nrate_hz = true\n", "readout.rate_hz"),  # bool for number
        ("[builder]\nmax_building = true\n", "builder.max_building"),  # bool for int
        ("[builder]\nmax_building = 12.0\n", "builder.max_building"),  # float for int
        ('[worker]\ncount = "4"\n', "worker.count"),  # string for int
        ("[output]\nwrite_streams = 1\n", "output.write_streams"),  # number for bool
        ('[output]\nwrite_streams = "yes"\n', "output.write_streams"),  # string for bool
        ("[readout]\npattern = 3\n", "readout.pattern"),  # number for string
        ("[tracker]\nlayer_radii_mm = 32.0\n", "tracker.layer_radii_mm"),  # scalar for list
        ("menu = 5\n", "menu"),
        ("readout = 5\n", "readout"),  # a value where a table is expected
    ],
)
def test_wrong_types_name_file_and_key(tmp_path, text, key):
    path = write(tmp_path, text)
    msg = config_error(path)
    assert str(path) in msg
    assert f"'{key}'" in msg


def test_bad_list_element_names_key_and_index(tmp_path):
    path = write(tmp_path, '[tracker]\nlayer_radii_mm = [32.0, "x", 90.0]\n')
    msg = config_error(path)
    assert str(path) in msg
    assert "tracker.layer_radii_mm" in msg and "[1]" in msg and "'x'" in msg


@pytest.mark.parametrize(
    "text, section",
    [
        ("[readout]\nrate_hz = -5.0\n", "readout"),
        ("[readout]\nrate_hz = 0\n", "readout"),
        ('[readout]\npattern = "spill"\n', "readout"),
        ("[builder]\nmax_waiting = 0\n", "builder"),
        ("[tracker]\nefficiency = 1.5\n", "tracker"),
        ("[tracker]\nlayer_radii_mm = [50.0, 40.0]\n", "tracker"),
        ("[calo]\nn_eta = 51\n", "calo"),
        ("[physics]\npileup_mean = -1.0\n", "physics"),
        ("[worker]\ncount = -1\n", "worker"),
        ("[worker]\nslots = 0\n", "worker"),
        ("[worker]\nslots = 65\n", "worker"),
        ("[inference]\nbreaker_failures = 0\n", "inference"),
        ('[inference]\nmodels = ["edge_classifier", "jet_taggr"]\n', "inference"),
        ('[inference]\ndevice = "cuda"\n', "inference"),
        ('[inference]\nshared_memory = "yes"\n', "inference"),
    ],
)
def test_invalid_values_are_config_errors(tmp_path, text, section):
    path = write(tmp_path, text)
    msg = config_error(path)
    assert str(path) in msg
    assert f"[{section}]" in msg


def test_bad_pattern_message_names_the_pattern(tmp_path):
    msg = config_error(write(tmp_path, '[readout]\npattern = "spill"\n'))
    assert "spill" in msg and "pattern" in msg


@pytest.mark.parametrize("text", ["[readout]\nrate_hz = nan\n", "[builder]\nbuild_timeout_ms = nan\n", "[worker]\nbudget_ms = nan\n"])
def test_nan_is_not_a_positive_number(tmp_path, text):
    config_error(write(tmp_path, text))


def test_nan_fraction_is_rejected(tmp_path):
    config_error(write(tmp_path, "[tracker]\nefficiency = nan\n"))


def test_missing_file_and_invalid_toml(tmp_path):
    missing = tmp_path / "absent.toml"
    msg = config_error(missing)
    assert str(missing) in msg and "not found" in msg
    path = write(tmp_path, "[readout\nrate_hz = 1\n")
    msg = config_error(path)
    assert str(path) in msg and "TOML" in msg


def test_relative_menu_is_resolved_against_the_file_folder(tmp_path, monkeypatch):
    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "menus").mkdir()
    menu_path = sub / "menus" / "m.toml"
    menu_path.write_text('[[chain]]\nname = "x"\nselection = "all"\nstreams = ["S"]\n')
    path = write(sub, 'menu = "menus/m.toml"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    cfg = load_config(path)
    assert Path(cfg.menu).is_absolute()
    assert Path(cfg.menu) == menu_path.resolve()
    assert [c.name for c in load_menu(cfg.menu).chains] == ["x"]
    # relative path to the config file itself works the same way
    cfg2 = load_config(Path("..") / "conf" / "farm.toml")
    assert Path(cfg2.menu) == menu_path.resolve()


def test_absolute_menu_is_kept(tmp_path):
    target = tmp_path / "abs_menu.toml"
    path = write(tmp_path, f'menu = "{target.as_posix()}"\n')
    assert load_config(path).menu == target.as_posix()


def test_with_overrides():
    base = FarmConfig()
    cfg = with_overrides(base, worker={"budget_ms": 1e-6}, readout={"rate_hz": 7.0, "pattern": "constant"}, calo={})
    assert cfg.worker.budget_ms == 1e-6
    assert cfg.worker.count == base.worker.count
    assert (cfg.readout.rate_hz, cfg.readout.pattern) == (7.0, "constant")
    assert cfg.readout.buffer_events == base.readout.buffer_events
    assert cfg.calo == base.calo and cfg.builder == base.builder and cfg.menu == base.menu
    assert base == FarmConfig()  # the original is untouched
    assert with_overrides(base) == base
    with pytest.raises(ValueError):  # the sections' own validation still runs
        with_overrides(base, readout={"rate_hz": -1.0})
    with pytest.raises(TypeError):
        with_overrides(base, readout={"no_such_field": 1})


def test_config_is_frozen_and_as_dict():
    cfg = FarmConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.readout.rate_hz = 5.0  # type: ignore[misc]
    d = as_dict(cfg)
    assert d["readout"]["rate_hz"] == 25.0
    assert d["menu"] == cfg.menu
    assert set(d) == {f.name for f in dataclasses.fields(FarmConfig)}


def test_deadlines_per_model(tmp_path):
    cfg = load_config(write(tmp_path, "[inference.deadline_ms]\nedge_classifier = 300.0\n"))
    assert cfg.inference.deadline_s("edge_classifier") == 0.3
    assert cfg.inference.deadline_s("jet_tagger") == FarmConfig().inference.deadline_s("jet_tagger")
    assert load_config(write(tmp_path, "[inference]\ntimeout_ms = 40.0\n")).inference.deadline_s("edge_classifier") == 0.04
    both = load_config(write(tmp_path, "[inference]\ntimeout_ms = 40.0\n[inference.deadline_ms]\njet_tagger = 5.0\n"))
    assert both.inference.deadline_s("jet_tagger") == 0.04  # timeout_ms, when set, is every model's deadline


def test_deadline_of_an_unknown_model_names_file_and_key(tmp_path):
    path = write(tmp_path, "[inference.deadline_ms]\ngnn = 300.0\n")
    message = config_error(path)
    assert str(path) in message and "inference.deadline_ms.gnn" in message and "edge_classifier" in message


def test_deadline_table_has_one_entry_per_model():
    import dataclasses

    from trigger_sim.config import ModelDeadlines
    from trigger_sim.models.registry import MODEL_NAMES

    assert tuple(f.name for f in dataclasses.fields(ModelDeadlines)) == MODEL_NAMES


@pytest.mark.parametrize("text, words", [
    ("[inference]\ntimeout_ms = -1.0\n", "timeout_ms"),
    ("[inference]\nservers = [\"nohost\"]\n", "host:port"),
    ("[inference]\ntriton_url = \"a:1\"\nservers = [\"b:2\"]\n", "both"),
    ("[inference]\nlocal_servers = 0\n", "local_servers"),
    ("[inference.deadline_ms]\njet_tagger = 0.0\n", "jet_tagger"),
])
def test_bad_server_and_deadline_settings(tmp_path, text, words):
    assert words in config_error(write(tmp_path, text))


def test_server_addresses():
    assert with_overrides(FarmConfig(), inference={"servers": ("a:1", "b:2")}).inference.server_addresses == ("a:1", "b:2")
    assert with_overrides(FarmConfig(), inference={"triton_url": "a:1"}).inference.server_addresses == ("a:1",)
    assert FarmConfig().inference.server_addresses == ()


def test_local_triton_metrics_ports_follow_the_monitoring_base():
    from trigger_sim.config import MonitoringConfig

    assert MonitoringConfig().triton_metrics_port(0) == 0  # monitoring off: Triton picks a free port
    on = MonitoringConfig(base_port=9400)
    assert [on.triton_metrics_port(i) for i in range(3)] == [8002, 8003, 8004]
    assert MonitoringConfig(base_port=9400, triton_base_port=0).triton_metrics_port(1) == 0
    with pytest.raises(ValueError, match="triton_base_port"):
        MonitoringConfig(triton_base_port=70000)


@pytest.mark.parametrize("ring_mb", [1e-6, 1e-9, -1.0, float("nan")])
def test_an_event_ring_too_small_to_create_is_rejected(ring_mb: float) -> None:
    # 1e-6 MB (1 byte) used to pass here and then stop the builder at start: the ring's space
    # raised ValueError, which the builder does not expect from EventRing (only OSError).
    with pytest.raises(ValueError, match="event_ring_mb"):
        BuilderConfig(event_ring_mb=ring_mb)


@pytest.mark.parametrize("ring_mb", [0.0, 1 / 1024, 32.0])
def test_event_rings_that_can_be_created_are_accepted(ring_mb: float) -> None:
    assert BuilderConfig(event_ring_mb=ring_mb).event_ring_mb == ring_mb
