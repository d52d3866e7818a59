"""`make demo`: the course's main job on shipped data, pictures written to an output folder."""

import argparse
from pathlib import Path

import numpy as np

from bidsnet_lib.masks import mask_gallery

DATA = Path(__file__).resolve().parents[1] / "data"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def shipped_photos(split: str = "test") -> list[Path]:
    """The shipped photos of one split, sorted; a clear error when the folder is missing or empty."""
    folder = DATA / "images" / split
    photos = sorted(p for p in folder.glob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        raise FileNotFoundError(f"no photos in {folder}: rebuild them with tools/make_photos.py")
    return photos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bidsnet demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("outputs"), help="folder for the pictures")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mask generators")
    args = parser.parse_args(argv)
    for path in mask_gallery(shipped_photos(), args.out, np.random.default_rng(args.seed)):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
