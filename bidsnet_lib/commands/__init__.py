"""The `bidsnet` command line, apart from the concepts: one module per subcommand.

Each module maps its flags onto a concept's functions and dataclasses and has a ``main(argv)``
that returns the exit status; ``bidsnet_lib.cli`` dispatches to it. Concept modules keep no
argparse. Every user error (a bad flag, a missing file, an invalid value) is one line on stderr,
``PROG: error: MESSAGE``, and exit status 2; ``--help`` exits 0. ``python -m
bidsnet_lib.commands.NAME`` runs a command without the console script (``torchrun -m
bidsnet_lib.commands.train`` for several training processes).
"""

import argparse
import sys
from collections.abc import Callable, Sequence

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


def fail(prog: str, error) -> int:
    """Print ``error`` as the command's one line on stderr; the user-error status, 2."""
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
