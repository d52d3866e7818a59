"""`bidsnet demo`: mask galleries and the shipped checkpoint's fills, pictures in outputs/ (bidsnet_lib.demo)."""

import sys
from pathlib import Path

from bidsnet_lib.commands import Parser, run
from bidsnet_lib.demo import run_demo


def build_parser(prog: str = "bidsnet demo") -> Parser:
    parser = Parser(prog=prog, description="The course's main job on shipped data, pictures written "
                                           "to an output folder.")
    parser.add_argument("--out", type=Path, default=Path("outputs"), help="folder for the pictures")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mask generators")
    return parser


def _demo(args) -> int:
    for path in run_demo(args.out, args.seed):
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None, prog: str = "bidsnet demo") -> int:
    return run(build_parser(prog), argv, _demo)


if __name__ == "__main__":
    sys.exit(main(prog="python -m bidsnet_lib.commands.demo"))
