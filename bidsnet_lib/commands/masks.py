"""`bidsnet masks`: write the fixed evaluation mask set, or draw a gallery over photos (bidsnet_lib.masks)."""

import sys
from pathlib import Path

import numpy as np

from bidsnet_lib.commands import Parser, run
from bidsnet_lib.masks import EVAL_PRESETS, LARGE_MASK_PRESETS, mask_gallery, write_eval_set
from bidsnet_lib.plumbing import IMAGE_EXTENSIONS, check_apart, got_expected, image_files


def build_parser(prog: str = "bidsnet masks") -> Parser:
    parser = Parser(prog=prog, description="Inpainting masks (1 = hole).")
    commands = parser.add_subparsers(dest="command", required=True)  # subparsers are Parsers too
    write = commands.add_parser("write", help="write the fixed evaluation mask set as 0/255 PNGs")
    write.add_argument("--out", required=True, help="output folder, new or holding a mask set, which is replaced "
                       "whole at the end (the shipped bidsnet_lib/eval_masks stays read-only)")
    write.add_argument("--size", type=int, default=256, help="mask side in pixels (default: 256)")
    write.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    write.add_argument("--per-bin", type=int, default=10, help="Set I masks per ratio bin (default: 10)")
    write.add_argument("--per-preset", type=int, default=20, help="Set II masks per preset (default: 20)")
    write.add_argument("--presets", nargs="+", default=list(EVAL_PRESETS), choices=sorted(LARGE_MASK_PRESETS),
                       help="Set II presets to write (default: thin medium thick)")
    gallery = commands.add_parser("gallery", help="draw Set I and Set II masks over photos")
    gallery.add_argument("--photos", default="data/images/test", help="folder of photos (default: data/images/test)")
    gallery.add_argument("--out", default="outputs", help="output folder (default: outputs)")
    gallery.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    gallery.add_argument("--size", type=int, default=256, help="tile side in pixels (default: 256)")
    gallery.add_argument("--columns", type=int, default=4, help="tiles per row (default: 4)")
    return parser


def _masks(args) -> int:
    if args.command == "write":
        paths = write_eval_set(args.out, args.size, args.seed, args.per_bin, args.per_preset, tuple(args.presets))
        print(f"wrote {len(paths)} masks and README.md to {args.out}")
        return 0
    if not Path(args.photos).is_dir():
        raise ValueError(got_expected("--photos", args.photos, "a folder of photos"))
    check_apart(args.out, {"--photos": args.photos})  # read recursively: its own tiles would come back
    photos = image_files(Path(args.photos), recursive=True)
    if not photos:
        raise ValueError(got_expected("--photos", args.photos, f"a folder holding {'/'.join(IMAGE_EXTENSIONS)} photos"))
    for path in mask_gallery(photos, args.out, np.random.default_rng(args.seed), size=args.size, columns=args.columns):
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None, prog: str = "bidsnet masks") -> int:
    return run(build_parser(prog), argv, _masks)


if __name__ == "__main__":
    sys.exit(main(prog="python -m bidsnet_lib.commands.masks"))
