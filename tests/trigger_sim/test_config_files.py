"""The configuration files shipped in configs/ load, and farm.toml documents the defaults."""

import dataclasses

from trigger_sim.config import CONFIG_DIR, FarmConfig, load_config
from trigger_sim.menu import load_menu


def test_farm_toml_lists_exactly_the_builtin_defaults():
    loaded = load_config(CONFIG_DIR / "farm.toml")
    assert loaded == dataclasses.replace(FarmConfig(), menu=loaded.menu)
    assert loaded.menu == str((CONFIG_DIR / "menu.toml").resolve())


def test_default_menu_loads_and_feeds_streams():
    menu = load_menu(FarmConfig().menu)
    assert len(menu.chains) >= 3
    assert "Main" in menu.streams
    assert any(c.prescale > 1 for c in menu.chains)
    assert menu.uses_tagger
