"""Seconds per image of every method ``bidsnet evaluate`` runs, per mask group, on one thread; and
what a full evaluation costs, the first time and with the baselines read from the cache.

    python bench/evaluate.py            # test photos at 256x256, 2 masks a group; writes its section of docs/benchmarks.md
    python bench/evaluate.py --quick    # smoke test: 64x64, 1 photo, 1 mask a group, prints only

The baselines run one image at a time, as ``bidsnet evaluate`` runs them; the model (the shipped
checkpoint through ``Inpainter``, the path ``bidsnet evaluate`` uses) takes each group's pairs in
one batch. "metrics" is PSNR + SSIM + hole colour error of one output; "cache read" is one
baseline output read back by ``CachedBaseline``. The table gives CPU seconds (this process, one
thread), what the work costs on an idle core; wall seconds grow with the machine's load, so the
load average and the wall/CPU ratio are printed beside it.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from bidsnet_lib.baselines import BASELINES, CachedBaseline, make_baseline, patchmatch_available
from bidsnet_lib.evaluate import InpainterMethod, load_mask_groups, load_photos
from bidsnet_lib.inference import SHIPPED_CHECKPOINT, Inpainter
from bidsnet_lib.masks import SHIPPED_MASKS
from bidsnet_lib.metrics import hole_colour_error, psnr, ssim
from bidsnet_lib.plumbing import REPO_ROOT, SHIPPED_IMAGES
from bidsnet_lib.reports import machine_line, write_section

SCRIPT = "bench/evaluate.py"  # names its section of docs/benchmarks.md


def _pairs(photos: dict, group) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (photo, mask) pair of a group as tensors (N, 3, S, S) and (N, 1, S, S)."""
    images = [photos[p] for p in photos for _ in group.masks]
    holes = [cv2.resize(m, photos[p].shape[1::-1], interpolation=cv2.INTER_NEAREST)
             for p in photos for m in group.masks]
    image = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    mask = torch.from_numpy(np.stack(holes)).float()[:, None]
    return image, mask


def _per_image(run, image, mask, one_at_a_time: bool) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per image."""
    cpu, wall = time.process_time(), time.perf_counter()
    if one_at_a_time:
        for i in range(len(image)):
            run(image[i : i + 1], mask[i : i + 1])
    else:
        run(image, mask)
    return (time.process_time() - cpu) / len(image), (time.perf_counter() - wall) / len(image)


def _metrics(image, mask):
    out = image.flip(-1)  # any other image: the cost does not depend on the values
    psnr(out, image), ssim(out, image), hole_colour_error(out, mask)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 px, 1 photo, 1 mask a group (smoke test)")
    parser.add_argument("--size", type=int, default=256, help="image side (default 256)")
    parser.add_argument("--photos", type=int, default=None, help="photos timed (default: all test photos)")
    parser.add_argument("--masks-per-group", type=int, default=2, help="masks timed per group (default 2)")
    parser.add_argument("--estimate-photos", type=int, default=30,
                        help="photos of the full evaluation to estimate (default 30)")
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT)
    parser.add_argument("--output", type=Path, default=None,
                        help="Markdown file for the table (default: docs/benchmarks.md, none with --quick)")
    args = parser.parse_args(argv)
    size, n_photos, per_group = (64, 1, 1) if args.quick else (args.size, args.photos, args.masks_per_group)
    output = args.output or (None if args.quick else REPO_ROOT / "docs" / "benchmarks.md")
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    photos = load_photos(SHIPPED_IMAGES, size, limit=n_photos)
    groups = load_mask_groups(SHIPPED_MASKS, limit=per_group)
    all_masks = {g.label: len(m.masks) for g, m in zip(groups, load_mask_groups(SHIPPED_MASKS), strict=True)}
    names = [b for b in BASELINES if b != "patchmatch" or patchmatch_available()]
    methods = {make_baseline(b).name: (make_baseline(b), True) for b in names}
    model = Inpainter.from_checkpoint(args.checkpoint, device="cpu")
    methods[model.label] = (InpainterMethod(model), False)

    seconds = {name: {} for name in [*methods, "metrics", "cache read"]}  # name -> group -> CPU s
    cpu_total = wall_total = 0.0
    image, mask = _pairs(photos, groups[0])
    for method, _ in methods.values():
        method(image[:1], mask[:1])  # warm-up: imports, allocations, the model's first call
    with tempfile.TemporaryDirectory() as cache:
        for group in groups:
            image, mask = _pairs(photos, group)
            cached = CachedBaseline(make_baseline("telea"), cache)
            cached(image, mask)  # written once
            for name, run, single in [*((n, m, s) for n, (m, s) in methods.items()),
                                      ("metrics", _metrics, False), ("cache read", cached, True)]:
                cpu, wall = _per_image(run, image, mask, single)
                seconds[name][group.label] = cpu
                cpu_total, wall_total = cpu_total + cpu, wall_total + wall

    labels = [g.label for g in groups]
    load = os.getloadavg()[0]
    lines = [f"## Evaluation: CPU seconds per image of each method (`{SCRIPT}`)", "",
             f"{len(photos)} test photos at {size}x{size}, {per_group} mask(s) of each shipped group, one "
             f"thread; {machine_line()}; {time.strftime('%Y-%m-%d')}. Load average {load:.1f} at the end: "
             f"wall time was {wall_total / cpu_total:.1f}x the CPU time.",
             "",
             "| method | mean | " + " | ".join(labels) + " |",
             "| --- | ---: |" + " ---: |" * len(labels)]
    for name, row in seconds.items():
        lines.append(f"| {name} | {np.mean(list(row.values())):.3f} | "
                     + " | ".join(f"{row[g]:.3f}" for g in labels) + " |")
    # A full evaluation: every shipped mask with every photo; the cached rerun reads the baselines.
    pairs = {g: all_masks[g] * args.estimate_photos for g in labels}
    first = sum(n * (sum(seconds[m][g] for m in methods) + seconds["metrics"][g]) for g, n in pairs.items())
    rerun = {name: (seconds["cache read"] if method.cache_outputs else seconds[name])
             for name, (method, _) in methods.items() if name != model.label}  # cached or not
    again = sum(n * (seconds[model.label][g] + seconds["metrics"][g] + sum(r[g] for r in rerun.values()))
                for g, n in pairs.items())
    lines += ["", f"Estimated `bidsnet evaluate` on {args.estimate_photos} photos x {sum(all_masks.values())} "
                  f"shipped masks ({sum(pairs.values()):,} pairs), on one idle core: {first / 60:.0f} min "
                  f"the first time, {again / 60:.1f} min again with biharmonic and PatchMatch read from the cache."]
    text = "\n".join(lines)
    print(text)
    if output is not None:
        write_section(output, SCRIPT, text)
        print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
