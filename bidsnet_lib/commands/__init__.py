"""The `bidsnet` command line, apart from the concepts: one module per subcommand.

Each module maps its flags onto a concept's functions and dataclasses (a config field's flag is
derived from the field, :func:`add_config_flags`) and has a ``main(argv)`` that returns the exit
status; ``bidsnet_lib.cli`` dispatches to it. Concept modules keep no
argparse. Every user error (a bad flag, a missing file, an invalid value) is one line on stderr,
``PROG: error: MESSAGE``, and exit status 2; ``--help`` exits 0. ``python -m
bidsnet_lib.commands.NAME`` runs a command without the console script (``torchrun -m
bidsnet_lib.commands.train`` for several training processes).
"""

import argparse
import dataclasses
import sys
import typing
from collections.abc import Callable, Sequence

from bidsnet_lib.plumbing import os_error_reason

# What a command reports in one line: bad values, missing or unreadable files, foreign
# checkpoints (CheckpointError is a ValueError). Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, TypeError, OSError)


class Parser(argparse.ArgumentParser):
    """argparse with a usage error on one line (no usage block) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected an int >= 1")
    return value


def flag_fields(config_class: type) -> list[dataclasses.Field]:
    """The fields of a config dataclass that are command flags: those with a ``help`` in their metadata."""
    return [f for f in dataclasses.fields(config_class) if "help" in f.metadata]


def add_config_flags(parser: argparse.ArgumentParser, config_class: type, **overrides: dict) -> None:
    """A flag for each of :func:`flag_fields` (``--batch-size`` for ``batch_size``), in a group named
    after the class: typed from the annotation (a bool is ``--x/--no-x``, a tuple takes several
    values), with the metadata's ``help``, ``metavar`` and ``choices``. ``overrides[name]``: argparse
    options that replace the derived ones (a type the annotation cannot give). No flag has a
    default: one not given leaves the config's value, see :func:`given_fields`."""
    group = parser.add_argument_group(f"{config_class.__name__} fields")
    hints = typing.get_type_hints(config_class)
    for f in flag_fields(config_class):
        hint, meta = hints[f.name], f.metadata
        options = {"help": meta["help"].replace("%", "%%"), "metavar": meta.get("metavar"), "choices": meta.get("choices")}
        if hint is bool:
            options = {"help": options["help"], "action": argparse.BooleanOptionalAction}
        elif typing.get_origin(hint) is tuple:
            options.update(nargs="+")
        elif hint in (int, float):
            options.update(type=hint, metavar=meta.get("metavar", hint.__name__.upper()))
        elif hint not in (str, str | None) and f.name not in overrides:
            raise TypeError(f"{config_class.__name__}.{f.name}: got the type {hint}, expected a flag type in overrides")
        group.add_argument(f"--{f.name.replace('_', '-')}", **{**options, **overrides.get(f.name, {})})


def given_fields(args: argparse.Namespace, config_class: type) -> dict:
    """The fields of ``config_class`` whose flags were given, by name (several values as a tuple)."""
    values = {f.name: getattr(args, f.name) for f in flag_fields(config_class)}
    return {name: tuple(v) if isinstance(v, list) else v for name, v in values.items() if v is not None}


def fail(prog: str, error) -> int:
    """Print ``error`` as the command's one line on stderr; the user-error status, 2. An OSError
    reads ``PATH: cause`` ("no space left on the disk"), without Python's ``[Errno N]``."""
    if isinstance(error, OSError) and error.errno is not None and error.strerror:
        error = error.strerror if error.filename is None else f"{error.filename}: {os_error_reason(error)}"
    print(f"{prog}: error: {error}", file=sys.stderr)
    return 2


def run(parser: Parser, argv: Sequence[str] | None, body: Callable[[argparse.Namespace], int | None],
        errors: tuple[type[BaseException], ...] = USER_ERRORS) -> int:
    """Parse ``argv`` and run ``body(args)``; the exit status, never SystemExit, never a traceback
    for one of ``errors``. A check of flags that argparse cannot express raises ValueError in ``body``."""
    try:  # argparse exits on bad usage (2) and --help (0); a command returns the status instead
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return int(stop.code or 0)
    try:
        return int(body(args) or 0)
    except errors as error:
        return fail(parser.prog, error)
