"""`bidsnet export`: a small inference checkpoint from a training run (bidsnet_lib.checkpoint)."""

import sys

from bidsnet_lib.checkpoint import DTYPES, export_inference
from bidsnet_lib.commands import Parser, run


def build_parser(prog: str = "bidsnet export") -> Parser:
    parser = Parser(prog=prog, description="Write a small inference checkpoint (EMA weights + config + "
                                           "metadata) from a training checkpoint or run directory.")
    parser.add_argument("checkpoint", help="training checkpoint (.pt) or run directory (uses latest.pt)")
    parser.add_argument("out", help="inference checkpoint to write (.pt)")
    parser.add_argument("--work-size", type=int, metavar="PX",
                        help="the side bidsnet inpaint works at (default: the training size)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float16",
                        help="storage precision of the weights (default float16)")
    return parser


def _export(args) -> int:
    out = export_inference(args.checkpoint, args.out, DTYPES[args.dtype], work_size=args.work_size)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MB)")
    return 0


def main(argv: list[str] | None = None, prog: str = "bidsnet export") -> int:
    return run(build_parser(prog), argv, _export)


if __name__ == "__main__":
    sys.exit(main(prog="python -m bidsnet_lib.commands.export"))
