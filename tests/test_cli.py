"""The `bidsnet` dispatcher: every command reaches its module's main."""

import importlib
from pathlib import Path

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


CONCEPTS = ("train", "evaluate", "masks", "inference", "ablate", "checkpoint", "model", "demo")


@pytest.mark.parametrize("name", CONCEPTS)
def test_concept_modules_keep_no_command_line(name):
    """#13: argparse lives in bidsnet_lib.commands, one module per subcommand."""
    import ast

    home = Path(cli.__file__).parent
    paths = sorted((home / name).glob("*.py")) if (home / name).is_dir() else [home / f"{name}.py"]
    assert paths and all(p.is_file() for p in paths), name
    for path in paths:  # a module, or every file of a package
        source = path.read_text()
        tree = ast.parse(source)
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "argparse" not in imported, path
        assert not [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in ("main", "build_parser")]
        assert "__main__" not in source, path


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_usage_error_is_one_line_and_status_2(command, capsys):
    argv = ["write", "--no-such-flag"] if command == "masks" else ["--no-such-flag"]
    assert cli.main([command, *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"bidsnet {command}: error: "), captured.err
    assert not captured.out


def test_one_parser_class_for_every_command():
    from bidsnet_lib.commands import Parser

    for command in cli.COMMANDS:
        module = importlib.import_module(cli.COMMANDS[command][0])
        assert type(module.build_parser()) is Parser, command
