"""`bidsnet inpaint`: a photo and its mask, or a folder of photos with masks (bidsnet_lib.inference).

Folder mode checks every pair first (headers only), reports every problem, writes each result
atomically as it is done and exits 1 when any image was skipped.
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from bidsnet_lib.commands import USER_ERRORS, Parser, run
from bidsnet_lib.inference import Inpainter, read_pair
from bidsnet_lib.plumbing import (
    IMAGE_EXTENSIONS,
    LOSSY_EXTENSIONS,
    check_apart,
    got_expected,
    image_size,
    images_by_stem,
    os_error_reason,
    resolve_device,
    save_image,
)


def _check_strict(holes: np.ndarray, name: str) -> None:
    if not holes.any() or holes.all():
        raise ValueError(f"{name} is all {'hole' if holes.all() else 'known'} (--strict wants a mask "
                         "with both holes and known pixels)")


def _lossy_note(out: Path, prog: str) -> None:
    if out.suffix.lower() in LOSSY_EXTENSIONS and out.suffix.lower() != ".webp":  # WebP is written lossless
        print(f"{prog}: note: {out.suffix} is lossy: written at quality 95, known pixels may differ from the "
              "input by a few levels; use .png (or .webp, written lossless) to keep them exactly", file=sys.stderr)


def _run_single(args, inpainter_for, prog: str) -> int:
    image, mask, out = Path(args.image), Path(args.mask), Path(args.out)
    if out.is_dir():
        raise ValueError(got_expected("-o", str(out), "an image file to write; it is a folder (for a folder of "
                             "photos use --images DIR --masks DIR -o DIR)"))
    if out.suffix.lower() not in IMAGE_EXTENSIONS or out.suffix.lower() not in Image.registered_extensions():
        raise ValueError(got_expected("-o", str(out), f"a file name ending in one of {', '.join(IMAGE_EXTENSIONS)}"))
    photo, holes = read_pair(image, mask, "IMAGE", "MASK")  # first: a folder given as IMAGE is named as such
    check_apart(out, {"IMAGE": image, "MASK": mask}, "-o")
    if args.strict:
        _check_strict(holes, f"mask {mask}")
    result = inpainter_for().inpaint(photo.rgb, holes)
    save_image(photo.with_rgb(result, holes.astype(bool)), out)
    _lossy_note(out, prog)
    return 0


def _run_folder(args, inpainter_for, prog: str) -> int:
    """Check every pair first and report every problem; then inpaint the good pairs, each result
    written atomically as it is done. 1 when any image was skipped."""
    from tqdm.auto import tqdm

    images_dir, masks_dir, out_dir = Path(args.images), Path(args.masks), Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(got_expected("-o", str(out_dir), "a folder for the results (folder mode); it is a file"))
    check_apart(out_dir, {"--images": images_dir, "--masks": masks_dir}, "-o")
    images, skipped = images_by_stem(images_dir, "--images")
    masks, mask_shared = images_by_stem(masks_dir, "--masks")
    todo = []
    for stem in sorted(images):  # headers only: a non-image or a size mismatch is found before the model loads
        try:
            if stem in mask_shared:
                raise ValueError(mask_shared[stem])
            if stem not in masks:
                raise ValueError(f"{images[stem]}: no mask named {stem}.<image extension> in {masks_dir}")
            (iw, ih), (mw, mh) = image_size(images[stem]), image_size(masks[stem], "mask")
            if (iw, ih) != (mw, mh):
                raise ValueError(f"mask {masks[stem]}: got {mh}x{mw}, expected the size of image {images[stem]}, "
                                 f"{ih}x{iw} (height x width)")
        except ValueError as err:
            skipped[stem] = str(err)
            continue
        todo.append(stem)
    for stem in sorted(skipped):
        print(f"{prog}: skipped {stem}: {skipped[stem]}", file=sys.stderr)
    if not todo:
        raise ValueError(got_expected("--images", str(images_dir), f"a photo with a usable mask; all {len(skipped)} "
                             "were skipped (reasons above)"))
    inpainter = inpainter_for()
    written = 0
    with tqdm(total=len(todo), unit="image", desc="inpaint") as bar:
        for start in range(0, len(todo), inpainter.batch_size):
            chunk = []
            for stem in todo[start : start + inpainter.batch_size]:
                try:  # a file may be truncated past its header: found only now, and only it is skipped
                    photo, holes = read_pair(images[stem], masks[stem])
                    if args.strict:
                        _check_strict(holes, f"mask {masks[stem]}")
                    chunk.append((stem, photo, holes))
                except ValueError as err:
                    skipped[stem] = str(err)
                    print(f"{prog}: skipped {stem}: {err}", file=sys.stderr)
            if chunk:
                results = inpainter.inpaint_many([p.rgb for _, p, _ in chunk], [h for _, _, h in chunk])
                for (stem, photo, holes), result in zip(chunk, results, strict=True):
                    target = out_dir / f"{stem}.png"
                    try:  # one photo that cannot be written (a name too long) is skipped, not the batch
                        save_image(photo.with_rgb(result, holes.astype(bool)), target)
                    except OSError as err:
                        if err.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):  # every later one would fail too
                            raise OSError(err.errno, f"-o: cannot write {str(target)!r} ({os_error_reason(err)}); "
                                          f"{written} image(s) written before it") from None
                        skipped[stem] = f"cannot write {target} ({os_error_reason(err)})"
                        print(f"{prog}: skipped {stem}: {skipped[stem]}", file=sys.stderr)
                        continue
                    written += 1
            bar.update(len(todo[start : start + inpainter.batch_size]))
    print(f"wrote {written} inpainted image(s) to {out_dir}" + (f"; skipped {len(skipped)} (reasons above)"
                                                                 if skipped else ""))
    return 1 if skipped else 0


def build_parser(prog: str = "bidsnet inpaint") -> Parser:
    parser = Parser(prog=prog, description="Inpaint the holes (white = hole) of a mask in a photo, "
                    "or of every image in a folder paired with the mask of the same file stem. "
                    "Known pixels are kept as they are; grey photos stay grey, 16-bit ones 16-bit (PNG, "
                    "TIFF), and a photo's transparency is written back unchanged, holes included (the "
                    "model fills colour, seeing transparent areas as white, and never alpha). Folder mode "
                    "checks every pair first, skips bad ones with a line each and exits 1 if any was skipped.")
    parser.add_argument("image", nargs="?", help="photo to inpaint")
    parser.add_argument("mask", nargs="?", help="mask of the same size; pixels > 50%% grey are holes")
    parser.add_argument("--images", help="folder of photos (folder mode)")
    parser.add_argument("--masks", help="folder of masks named like the photos (folder mode)")
    parser.add_argument("-o", "--out", required=True, help="output image file, or folder in folder mode (PNGs)")
    parser.add_argument("--checkpoint", help="inference checkpoint (default: the shipped one)")
    parser.add_argument("--strict", action="store_true", help="refuse masks that are all hole or all known")
    parser.add_argument("--no-mirror", action="store_true",
                        help="one model call per crop: half the time (default: each fill is averaged with the "
                             "model's fill of the mirrored crop, +0.0004 to +0.0013 SSIM on the validation split)")
    parser.add_argument("--coarse-to-fine", action=argparse.BooleanOptionalAction, default=None,
                        help="fill holes larger than the working size level by level up to the photo's own "
                             "resolution, in tiles, not from one thumbnail upscaled (default: on for a model "
                             "with a residual head, such as the shipped one). Measured on 2-3 Mpx photos: "
                             "+0.2 to +2.2 dB PSNR over Telea, above the thumbnail path too, at 12-46 "
                             "CPU-seconds a photo instead of a few; --no-coarse-to-fine: the fast thumbnail path")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    return parser


def main(argv: list[str] | None = None, prog: str = "bidsnet inpaint") -> int:
    def inpaint(args) -> int:
        folder = args.images is not None or args.masks is not None
        if folder and (args.image or args.mask):
            raise ValueError("give either IMAGE MASK or --images DIR --masks DIR, not both")
        if folder and (args.images is None or args.masks is None):
            raise ValueError("folder mode needs both --images DIR and --masks DIR")
        if not folder and (args.image is None or args.mask is None):
            raise ValueError("give IMAGE MASK -o OUT, or --images DIR --masks DIR -o DIR")
        device = resolve_device(args.device)  # before any work: one line, not CUDA's traceback
        # Neither flag: the checkpoint decides (on for a residual head, Inpainter.from_checkpoint).
        choice = {} if args.coarse_to_fine is None else {"coarse_to_fine": args.coarse_to_fine}
        return (_run_folder if folder else _run_single)(
            args, lambda: Inpainter.from_checkpoint(args.checkpoint, device=device, mirror=not args.no_mirror,
                                                    **choice), prog)

    return run(build_parser(prog), argv, inpaint, errors=(*USER_ERRORS, Image.DecompressionBombError))


if __name__ == "__main__":
    sys.exit(main(prog="python -m bidsnet_lib.commands.inpaint"))
