"""`bidsnet evaluate`: a checkpoint through bidsnet inpaint's Inpainter against the classical
baselines, per mask group, with intervals over photos (bidsnet_lib.evaluate)."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from bidsnet_lib.baselines import BASELINES, make_baseline
from bidsnet_lib.bootstrap import N_RESAMPLES
from bidsnet_lib.commands import USER_ERRORS, Parser, positive_int, run
from bidsnet_lib.evaluate import (
    HIRES_JOURNAL,
    EvalResult,
    RealismCheck,
    RowJournal,
    default_baselines,
    default_cache_dir,
    evaluate,
    evaluate_native,
    load_mask_groups,
    load_native_set,
    load_photos,
    whole_photo_baseline,
    write_outputs,
)
from bidsnet_lib.fid import FID_WEIGHTS_FILE
from bidsnet_lib.masks import HIRES_IMAGES, HIRES_MASKS, MIN_SIZE, SHIPPED_MASKS
from bidsnet_lib.plumbing import (
    SHIPPED_IMAGES,
    atomic_write,
    check_apart,
    check_writable_folder,
    resolve_device,
)
from bidsnet_lib.train import weights_digest

SHIPPED_VAL = SHIPPED_IMAGES.parent / "val"  # the course's validation photos: the C2ST's default training set


def _size(text: str) -> int | str:
    if text == "native":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < MIN_SIZE:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected an int >= {MIN_SIZE} or 'native'")
    return value


def _baseline_names(text: str) -> tuple[str, ...]:
    if text == "none":
        return ()
    names = tuple(n.strip() for n in text.split(","))
    wrong = [n for n in names if n not in BASELINES]
    if wrong or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"got {text!r}, expected distinct names from "
                                         f"{','.join(BASELINES)} separated by commas, or none")
    return names


def build_parser(prog: str = "bidsnet evaluate") -> Parser:
    parser = Parser(prog=prog, description=(
        "PSNR, SSIM, LPIPS, FID and hole colour error of a checkpoint (through bidsnet inpaint's "
        "Inpainter) and of the classical baselines, per mask group (Set I hole-ratio bins, Set II "
        "presets), on the composited outputs, with 95 % bootstrap intervals over photos and the "
        "checkpoint's paired differences to each baseline. Writes results.md (the tables, also "
        "printed), results.csv, results.json, per_photo.csv, metrics_vs_hole_ratio.png and "
        "examples.png into --out."))
    parser.add_argument("--checkpoint", required=True, help="inference (or training) checkpoint")
    parser.add_argument("--images", default=None,
                        help="folder of test photos (default: the shipped data/images/test; with --hires "
                             "data/images/test_hires)")
    parser.add_argument("--masks", default=None,
                        help="the shipped root bidsnet_lib/eval_masks (every Set I bin and Set II preset), one "
                             "set's folder, or any folder of masks (grouped by hole ratio); "
                             "default: the shipped bidsnet_lib/eval_masks (with --hires data/test_hires_masks)")
    parser.add_argument("--hires", action="store_true",
                        help="each photo at its own resolution with its own masks (KIND/PHOTO_STEM/NNN.png, "
                             "drawn at its size), nothing resized: PSNR, SSIM, hole sharpness, seconds and "
                             "peak memory per photo, by mask kind; the model by its thumbnail path and "
                             "coarse to fine, the baselines on the whole photo (issue 28)")
    parser.add_argument("--out", required=True, help="folder for the results")
    parser.add_argument("--size", type=_size, default=256,
                        help="evaluation resolution: centre square crops resized to SIZE x SIZE "
                             "(default 256), or 'native': each photo at its own size; the model "
                             "always runs through bidsnet inpaint's crops at its training size")
    parser.add_argument("--masks-per-group", "--limit", dest="limit", type=positive_int, default=None,
                        help="only the first K masks (sorted by file) of each group (quick runs)")
    parser.add_argument("--work-size", type=positive_int, metavar="PX",
                        help="the side of the model's crops (default: the checkpoint's working size); "
                             "smaller photos are padded up to it")
    parser.add_argument("--no-mirror", action="store_true",
                        help="one model call per crop, as bidsnet inpaint --no-mirror (default: the fill is "
                             "averaged with that of the mirrored crop, as bidsnet inpaint does)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the bootstrap and torch, picks the examples shown")
    parser.add_argument("--resamples", type=positive_int, default=N_RESAMPLES,
                        help=f"bootstrap resamples of the photos (default {N_RESAMPLES})")
    parser.add_argument("--baselines", type=_baseline_names, default=None,
                        help=f"comma-separated, from {','.join(BASELINES)}, or none (default: all; "
                             "patchmatch only when pypatchmatch is installed)")
    parser.add_argument("--patch-size", type=positive_int, default=3,
                        help="PatchMatch's patch radius: patches of (2p+1)^2 pixels (default 3)")
    parser.add_argument("--cache", default=None,
                        help=f"folder keeping the outputs of the slow baselines (biharmonic, PatchMatch: "
                             f"about 40 kB a pair at 256 px), computed once per photo, mask, size and "
                             f"method (default: {default_cache_dir()})")
    parser.add_argument("--no-cache", action="store_true", help="compute every baseline output afresh")
    parser.add_argument("--lpips", choices=("alex", "vgg", "off"), default="alex",
                        help="LPIPS trunk (ImageNet weights needed: torch.hub cache or "
                             "--lpips-weights), or off (reported as skipped)")
    parser.add_argument("--lpips-weights", help="the torchvision ImageNet weight file of the trunk")
    parser.add_argument("--random-lpips-backbone", action="store_true",
                        help="a random LPIPS trunk: runs offline, NOT comparable to published LPIPS")
    parser.add_argument("--fid-weights", help=f"FID's Inception-v3 weight file ({FID_WEIGHTS_FILE})")
    parser.add_argument("--no-fid", action="store_true", help="skip FID (reported as skipped)")
    parser.add_argument("--radius", type=positive_int, default=3, help="Telea/NS neighbourhood radius")
    parser.add_argument("--batch-size", type=positive_int, default=16,
                        help="pairs per batch (the model's crops: at most this many per forward pass)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    # realism (issue 29): hole sharpness and C2ST detectability, bidsnet_lib.evaluate.RealismCheck
    # Off by default: the C2ST has every method fill the training photos too (about twice the run time).
    parser.add_argument("--realism", action="store_true",
                        help="add hole sharpness and detectability (a two-sample classifier test, C2ST AUC) "
                             "per group and method; each method also fills the --realism-train photos, "
                             "which about doubles the run time (default: off)")
    parser.add_argument("--realism-train", metavar="FOLDER",
                        help=f"photos the detectability classifiers are trained on, apart from --images; "
                             f"each method fills them with the same masks (default: {SHIPPED_VAL})")
    return parser


def _metrics(args, device) -> tuple[object, object, dict[str, str]]:
    """LPIPS and FID as asked; missing weight files fail here, before any work, naming the flags."""
    from bidsnet_lib.fid import load_fid_inception
    from bidsnet_lib.metrics import LPIPSMetric

    lpips, fid, skipped = None, None, {}
    if args.lpips == "off":
        skipped["lpips"] = "--lpips off"
    else:
        try:
            lpips = LPIPSMetric(args.lpips, backbone_path=args.lpips_weights,
                                random_backbone=args.random_lpips_backbone, device=device)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"{error}\n  Here: --lpips-weights PATH, or --lpips off (LPIPS reported as skipped), "
                "or --random-lpips-backbone (labelled NOT comparable).") from None
    if args.no_fid:
        skipped["fid"] = "--no-fid"
    else:
        try:
            fid = load_fid_inception(args.fid_weights, device=device)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"{error}\n  Here: --fid-weights PATH, or --no-fid (FID reported as skipped).") from None
    return lpips, fid, skipped


def _run(args) -> EvalResult:
    from bidsnet_lib.inference import Inpainter

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: got the file {str(out)!r}, expected a folder")
    inputs = {"--images": args.images, "--masks": args.masks,
              "--realism-train": (args.realism_train or SHIPPED_VAL) if args.realism else None}
    check_apart(out, inputs)
    if args.cache and not args.no_cache:  # the cache is written too
        check_apart(args.cache, inputs, "--cache")
    check_writable_folder(out)  # a read-only --out fails now, not after the work
    # The checkpoint, photos and masks first, then the metrics' weight files: every mistake fails
    # in seconds.
    device = resolve_device(args.device)  # one line naming the devices there are, not CUDA's traceback
    options = {"work_size": args.work_size} if args.work_size else {}
    inpainter = Inpainter.from_checkpoint(args.checkpoint, device=device, batch_size=args.batch_size,
                                          mirror=not args.no_mirror, **options)
    load_photos(args.images, limit=1)
    with warnings.catch_warnings(record=True) as dropped:  # masks in no hole-ratio bin: a note, and in the protocol
        warnings.simplefilter("always")
        groups = load_mask_groups(args.masks, args.limit)
    for warning in dropped:
        print(f"note: {warning.message}", file=sys.stderr)
    realism = _realism(args)
    lpips, fid, skipped = _metrics(args, device)
    with warnings.catch_warnings(record=True) as left_out:  # said once, as a note, not as a warning
        warnings.simplefilter("always")
        names = default_baselines() if args.baselines is None else args.baselines
    for warning in left_out:
        print(f"note: {warning.message}", file=sys.stderr)
    baselines = [make_baseline(n, patch_size=args.patch_size) if n == "patchmatch" else n for n in names]
    mirrored = "" if args.no_mirror else ", each fill averaged with that of the mirrored crop"
    # Only a crop larger than the working square is filled coarse to fine: never when the photos fit it
    # (the default 256 px), whose protocol and results stay as they were.
    larger = args.size == "native" or args.size > inpainter.work_size
    levels = ", a larger crop filled coarse to fine" if inpainter.coarse_to_fine and larger else ""
    through = (f"the model through bidsnet inpaint's Inpainter (crops around the holes at its working "
               f"size {inpainter.work_size}x{inpainter.work_size}{mirrored}{levels}), the baselines on the "
               "whole image")
    if args.size == "native":
        photos = load_photos(args.images)
        protocol = (f"{len(photos)} photos of {args.images} at their own sizes; masks stretched to each "
                    f"(nearest); {through}.")
    else:
        photos = load_photos(args.images, args.size)
        protocol = (f"{len(photos)} photos of {args.images}, centre-cropped to a square and resized "
                    f"to {args.size}x{args.size}; {through}.")
    protocol += "".join(f" Masks: {warning.message}." for warning in dropped)
    if args.baselines is None and "patchmatch" not in names:
        protocol += " PatchMatch is left out: pypatchmatch is not installed."
    cache = None if args.no_cache else Path(args.cache) if args.cache else default_cache_dir()
    return evaluate({inpainter.label: inpainter}, photos, groups, baselines=baselines, radius=args.radius,
                    lpips=lpips, fid_features=fid, skipped=skipped, batch_size=args.batch_size,
                    seed=args.seed, protocol=protocol, cache=cache, n_resamples=args.resamples,
                    realism=realism)


def _realism(args) -> RealismCheck | None:
    """--realism: the C2ST's training photos, at the test photos' size (issue 29)."""
    if not args.realism:
        return None
    train = Path(args.realism_train or SHIPPED_VAL)
    if train.resolve() == Path(args.images).resolve():
        raise ValueError(f"--realism-train: got {args.realism_train!r}, expected photos apart from "
                         "--images (the classifier is trained on other photos than it is scored on)")
    photos = load_photos(train, None if args.size == "native" else args.size)
    return RealismCheck(photos, source=str(train))


def _run_hires(args) -> int:
    """--hires: bidsnet_lib.evaluate.native on the high-resolution set (or --images/--masks in its layout)."""
    from bidsnet_lib.inference import Inpainter

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: got the file {str(out)!r}, expected a folder")
    check_apart(out, {"--images": args.images or HIRES_IMAGES, "--masks": args.masks or HIRES_MASKS})
    check_writable_folder(out)  # a read-only --out fails now, not after the work
    pairs = load_native_set(args.images or HIRES_IMAGES, args.masks or HIRES_MASKS, args.limit)
    device = resolve_device(args.device)
    options = dict(device=device, batch_size=args.batch_size, mirror=not args.no_mirror)
    if args.work_size:
        options["work_size"] = args.work_size
    # The old thumbnail path's row beside coarse to fine (bidsnet inpaint's default for a residual head).
    thumbnail = Inpainter.from_checkpoint(args.checkpoint, coarse_to_fine=False, **options)
    methods = {f"{thumbnail.label}, thumbnail": thumbnail.inpaint}
    if getattr(thumbnail.model, "config", None) is not None and thumbnail.model.config.output == "residual":
        methods[f"{thumbnail.label}, coarse to fine"] = Inpainter.from_checkpoint(
            args.checkpoint, coarse_to_fine=True, **options).inpaint
    names = ("telea", "ns") if args.baselines is None else args.baselines
    for name in names:
        methods[name] = whole_photo_baseline(name, args.radius if name in ("telea", "ns") else None)
    photos = len({p.photo for p in pairs})
    out.mkdir(parents=True, exist_ok=True)
    # What the rows depend on, beside the photos and masks each row names: a rerun with other
    # weights or options is refused rather than mixed in.
    journal = RowJournal(out / HIRES_JOURNAL, {
        "weights_sha256": weights_digest(thumbnail.model), "methods": list(methods), "work_size": thumbnail.work_size,
        "mirror": thumbnail.mirror, "margin": thumbnail.margin, "radius": args.radius,
        "images": str(Path(args.images or HIRES_IMAGES).resolve()), "masks": str(Path(args.masks or HIRES_MASKS).resolve())})
    total = sum(len(p.masks) for p in pairs) * len(methods)
    print(f"{photos} photos x {len(pairs) // photos} mask kinds, {sum(len(p.masks) for p in pairs)} masks, "
          f"{len(methods)} methods; {len(journal.rows)} of {total} fills kept from an earlier run in "
          f"{journal.path}", file=sys.stderr)
    result = evaluate_native(methods, pairs, baselines=names, journal=journal, progress=lambda row: print(
        f"{row['kind']} {row['photo']} {row['mask']} {row['method']}: {row['psnr']:.2f} dB, "
        f"{row['seconds']:.1f} s", file=sys.stderr, flush=True))
    table = result.markdown(seed=args.seed)
    atomic_write(out / "results_hires.md", table)
    atomic_write(out / "results_hires.json", json.dumps({"rows": result.rows, "baselines": list(names)}, indent=1))
    print(table)
    print(f"wrote {out / 'results_hires.md'}, {out / 'results_hires.json'}")
    return 0


def main(argv: list[str] | None = None, prog: str = "bidsnet evaluate") -> int:
    def run_evaluation(args) -> int:
        if args.random_lpips_backbone and args.lpips == "off":
            raise ValueError("--random-lpips-backbone needs an LPIPS trunk (--lpips alex or vgg), not --lpips off")
        if args.random_lpips_backbone and args.lpips_weights:
            raise ValueError("--lpips-weights and --random-lpips-backbone exclude each other")
        if args.no_fid and args.fid_weights:
            raise ValueError("--fid-weights and --no-fid exclude each other")
        if args.realism_train is not None and not args.realism:
            raise ValueError("--realism-train FOLDER needs --realism (it names the photos the "
                             "detectability classifier is trained on)")
        if args.hires:
            if args.realism:
                raise ValueError("--realism with --hires: detectability is measured on the 256-px protocol "
                                 "only; drop one of them")
            return _run_hires(args)
        args.images = args.images or str(SHIPPED_IMAGES)
        args.masks = args.masks or str(SHIPPED_MASKS)
        result = _run(args)
        paths = write_outputs(result, args.out)
        print(result.markdown())
        print("\nwrote " + ", ".join(str(p) for p in paths.values()))
        return 0

    # ImportError: an optional baseline's package is missing.
    return run(build_parser(prog), argv, run_evaluation, errors=(*USER_ERRORS, ImportError))


if __name__ == "__main__":
    sys.exit(main(prog="python -m bidsnet_lib.commands.evaluate"))
