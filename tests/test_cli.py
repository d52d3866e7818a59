"""The `bidsnet` dispatcher: every command reaches its module's main."""

import importlib

import pytest

from bidsnet_lib import cli


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_has_a_main(command):
    module = importlib.import_module(cli.COMMANDS[command][0])
    assert callable(module.main)


def test_help_lists_the_commands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)


def test_unknown_command_is_exit_2_with_the_valid_names(capsys):
    assert cli.main(["nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'nope'" in err and "inpaint" in err


def test_arguments_reach_the_module(capsys):
    assert cli.main(["model", "--summary"]) == 0
    assert "small" in capsys.readouterr().out
