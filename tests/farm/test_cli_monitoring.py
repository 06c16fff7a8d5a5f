"""`--metrics-port`: the command line's way to turn the Prometheus endpoints on."""

from __future__ import annotations

from click.testing import CliRunner

from farm.cli import _configure, _monitoring, main


def test_metrics_port_sets_the_monitoring_base_port():
    assert _configure(None, None, None, None, None, None, False).monitoring.base_port == 0  # off by default
    config = _configure(None, None, None, None, None, None, False, monitoring=_monitoring(9400))
    assert config.monitoring.base_port == 9400 and config.monitoring.enabled


def test_a_port_out_of_range_is_refused_before_anything_starts():
    for command in (["run"], ["replay", __file__]):
        result = CliRunner().invoke(main, [*command, "--metrics-port", "0"])
        assert result.exit_code == 2 and "--metrics-port" in result.output, result.output
