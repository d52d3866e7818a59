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
    argv = ["write", "--out", "x", "--no-such-flag"] if command == "masks" else ["--no-such-flag"]
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


# Every flag `bidsnet train` had when its flags were listed by hand (README, notebooks and the
# model card use them): derived from the config fields now, none may go.
TRAIN_FLAGS = (
    "--preset --data --out --resume --overwrite --init --device --processes --no-progress --val-data --steps "
    "--batch-size --size --lr-g --lr-d --grad-clip --ema-decay --seed --num-workers --log-every --sample-every "
    "--validate-every --checkpoint-every --keep-every --val-size --deterministic --no-deterministic --amp "
    "--no-amp --cpu-bf16 --no-cpu-bf16 --channels-last --no-channels-last --compile --no-compile --input-fill "
    "--output --mask-folder --mask-mix --vgg-weights --perceptual --style --adversarial --hole --valid --r1 --ssim"
).split()


def test_train_flags_are_the_config_fields_with_help():
    from bidsnet_lib.commands import flag_fields
    from bidsnet_lib.commands.train import build_parser
    from bidsnet_lib.losses import LOSS_TERMS, LossConfig
    from bidsnet_lib.model import BIDSNetConfig
    from bidsnet_lib.train import TrainConfig

    parser = build_parser()
    assert set(TRAIN_FLAGS) <= set(parser._option_string_actions)
    actions = {action.dest: action for action in parser._actions}
    for config_class in (TrainConfig, BIDSNetConfig, LossConfig):
        for f in flag_fields(config_class):
            assert actions[f.name].help.replace("%%", "%") == f.metadata["help"], f.name  # argparse escapes %
    assert set(LOSS_TERMS) <= set(actions)  # a new loss term gets its flag


def test_config_flags_are_typed_from_the_annotation():
    import dataclasses

    from bidsnet_lib.commands import Parser, add_config_flags, given_fields

    @dataclasses.dataclass
    class Toy:
        count: int = dataclasses.field(default=1, metadata={"help": "how many (100%)"})
        rate: float = dataclasses.field(default=0.5, metadata={"help": "how fast", "metavar": "R"})
        fast: bool = dataclasses.field(default=False, metadata={"help": "go"})
        folders: tuple[str, ...] = dataclasses.field(default=(), metadata={"help": "where"})
        kind: str = dataclasses.field(default="a", metadata={"help": "which", "choices": ("a", "b")})
        table: dict = dataclasses.field(default_factory=dict, metadata={"help": "pairs"})
        hidden: int = 0  # no help: no flag

    parser = Parser(prog="toy")
    with pytest.raises(TypeError, match="Toy.table: got the type <class 'dict'>, expected a flag type in overrides"):
        add_config_flags(parser, Toy)
    parser = Parser(prog="toy")
    add_config_flags(parser, Toy, table={"type": lambda text: dict([text.split("=")])})
    args = parser.parse_args(["--count", "3", "--no-fast", "--folders", "x", "y", "--kind", "b", "--table", "k=v"])
    assert given_fields(args, Toy) == {"count": 3, "fast": False, "folders": ("x", "y"), "kind": "b",
                                       "table": {"k": "v"}}
    assert given_fields(parser.parse_args([]), Toy) == {}  # no defaults: the config keeps its values
    assert "--hidden" not in parser._option_string_actions and "how many (100%)" in parser.format_help()
    assert parser.parse_args(["--rate", "2"]).rate == 2.0 and "--rate R" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--kind", "c"])
