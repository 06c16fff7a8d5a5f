"""The command line's server and deadline options: --triton-url (repeatable), --local-servers, --timeout-ms."""

from __future__ import annotations

from farm.cli import _configure


def configure(**kw):
    args = dict(config_path=None, rate=None, pattern=None, workers=None, triton_url=(), timeout_ms=None, no_output=False)
    args.update(kw)
    return _configure(**args).inference


def test_one_url_is_a_pool_of_one_and_several_a_pool():
    assert configure(triton_url=("a:1",)).server_addresses == ("a:1",)
    assert configure(triton_url=("a:1", "b:2")).server_addresses == ("a:1", "b:2")
    assert configure().server_addresses == ()


def test_command_line_servers_replace_the_file_s(tmp_path):
    path = tmp_path / "farm.toml"
    path.write_text('[inference]\nservers = ["x:1", "y:2"]\n')
    assert configure(config_path=str(path), triton_url=("a:1",)).server_addresses == ("a:1",)


def test_timeout_sets_every_model_and_local_servers():
    inference = configure(timeout_ms=30.0, local_servers=3)
    assert inference.deadline_s("edge_classifier") == inference.deadline_s("jet_tagger") == 0.03
    assert inference.local_servers == 3
