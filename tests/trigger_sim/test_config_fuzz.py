"""Bad input where configuration enters: any text gives a ConfigError or a valid config."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_sim.config import FarmConfig, load_config
from trigger_sim.errors import ConfigError
from trigger_sim.menu import load_menu

SECTIONS = ["run", "tracker", "calo", "physics", "readout", "builder", "features", "worker", "inference", "output", "faults"]
VALUES = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                   st.text(string.ascii_letters, max_size=8), st.lists(st.integers(-5, 2000), max_size=4))


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(v), repr(v))
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return str(v)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_loader(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("cfg") / "farm.toml"
    path.write_bytes(data)
    try:
        assert isinstance(load_config(path), FarmConfig)
    except ConfigError as err:
        assert str(path) in str(err)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(SECTIONS), st.text(string.ascii_lowercase + "_", min_size=1, max_size=24), VALUES)
def test_any_key_and_value_is_a_config_error_or_valid(tmp_path_factory, section, key, value):
    path = tmp_path_factory.mktemp("cfg") / "farm.toml"
    path.write_text(f"[{section}]\n{key} = {_toml_value(value)}\n")
    try:
        cfg = load_config(path)
    except ConfigError as err:
        assert str(path) in str(err)
        return
    assert getattr(cfg, section) is not None  # accepted: a known key with a valid value


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_random_menu_text_is_a_config_error_or_a_menu(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("menu") / "menu.toml"
    path.write_text(text)
    try:
        load_menu(path)
    except ConfigError as err:
        assert str(path) in str(err)
