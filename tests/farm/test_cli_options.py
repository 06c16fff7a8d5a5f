"""The data commands' shared options: a configuration that cannot be read and an existing output
file are usage errors that say what to do."""

from __future__ import annotations

import click
import pytest

from farm.cli_options import config_or_usage_error, refuse_existing


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "r.tsrec"
    refuse_existing(str(out), overwrite=False)  # absent: fine
    out.write_bytes(b"x")
    with pytest.raises(click.UsageError, match="--overwrite"):
        refuse_existing(str(out), overwrite=False)
    refuse_existing(str(out), overwrite=True)


def test_a_bad_configuration_is_a_usage_error_naming_the_key(tmp_path):
    bad = tmp_path / "farm.toml"
    bad.write_text("[worker]\nno_such_key = 1\n")
    with pytest.raises(click.UsageError, match="no_such_key"):
        config_or_usage_error(str(bad))
    assert config_or_usage_error(None).worker is not None
