"""`bidsnet ablate`: the paper's ablations at small scale, tables and verdicts (bidsnet_lib.ablate)."""

import os
import shlex
import sys

from bidsnet_lib.ablate import (
    DEFAULT_EVAL_SIZE,
    DEFAULT_STEPS,
    DOCS,
    LPIPS_MODES,
    STUDY_NAMES,
    TRAIN_IMAGES,
    AblationSettings,
    RunInterrupted,
    resolve_studies,
    run_ablations,
)
from bidsnet_lib.commands import Parser, run
from bidsnet_lib.masks import SHIPPED_MASKS
from bidsnet_lib.plumbing import SHIPPED_IMAGES


def build_parser(prog: str = "bidsnet ablate") -> Parser:
    p = Parser(prog=prog, description=(
        "Reproduce the paper's ablations at small scale: train every variant of a study with the "
        "same data, steps, seeds and masks, evaluate it against Telea and Navier-Stokes, and write "
        "one table per study with a verdict per claim. Finished runs in --out are reused."))
    p.add_argument("--study", required=True, metavar="NAME", help=f"one of {', '.join(STUDY_NAMES)}")
    p.add_argument("--out", default="runs/ablations", help="folder for runs and tables (default runs/ablations)")
    p.add_argument("--steps", type=int, help=f"training steps per run (default {DEFAULT_STEPS}; quick 2)")
    p.add_argument("--seeds", type=int, help="seeds per variant, 0..N-1 (default 2, at least 2)")
    p.add_argument("--size", type=int, help="side of the training crops in px (default 128; quick 64)")
    p.add_argument("--eval-size", type=int,
                   help=f"side of the test photos scored, in px (default {DEFAULT_EVAL_SIZE}, the model card's; quick 64)")
    p.add_argument("--limit", type=int, help="masks per evaluation group (default all; quick 1)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 2 steps of batch 2 at 64 px, 1 mask per group, 2 seeds, 2 variants per study")
    p.add_argument("--jobs", type=int,
                   help="runs at once, each with cores/jobs torch threads (default min(2, cores); quick 1)")
    p.add_argument("--lpips", choices=LPIPS_MODES, default="off",
                   help="off (default), alex (needs torchvision's AlexNet ImageNet file: --lpips-weights "
                        "or torch.hub's cache), or random (a random trunk: NOT comparable, labelled so)")
    p.add_argument("--lpips-weights", metavar="FILE", help="the AlexNet ImageNet weight file for --lpips alex")
    p.add_argument("--data", default=str(TRAIN_IMAGES), help="training photos (default data/images/train)")
    p.add_argument("--images", default=str(SHIPPED_IMAGES), help="test photos (default data/images/test)")
    p.add_argument("--masks", default=str(SHIPPED_MASKS), help="evaluation masks (default bidsnet_lib/eval_masks)")
    p.add_argument("--docs", nargs="?", const=str(DOCS), metavar="FILE",
                   help="also rewrite the study's section of FILE (default docs/ablations.md) and its plot")
    p.add_argument("--dry-run", action="store_true", help="measure, print the plan and time estimate, train nothing")
    return p


def main(argv: list[str] | None = None, prog: str = "bidsnet ablate") -> int:
    argv = sys.argv[1:] if argv is None else list(argv)

    def ablate(args) -> int:
        studies = resolve_studies(args.study)
        knobs = {k: getattr(args, k) for k in ("steps", "seeds", "size", "eval_size", "limit") if getattr(args, k) is not None}
        knobs.update(lpips=args.lpips, lpips_weights=args.lpips_weights, train_images=args.data,
                     test_images=args.images, masks=args.masks)
        settings = AblationSettings.quick_preset(**knobs) if args.quick else AblationSettings(**knobs)
        jobs = args.jobs if args.jobs is not None else 1 if args.quick else min(2, os.cpu_count() or 1)
        try:
            run_ablations(studies, settings, args.out, jobs=jobs, docs=args.docs, dry_run=args.dry_run,
                          command=shlex.join(["bidsnet", "ablate", *argv]))
        except RunInterrupted as stop:  # a run saved its checkpoint; nothing was recorded as finished
            print(f"{prog}: {stop}", file=sys.stderr)
            return 128 + stop.signal_number
        except KeyboardInterrupt:  # Ctrl-C between runs or while one is evaluated: finished runs are kept
            print(f"{prog}: interrupted; run the same command again to go on", file=sys.stderr)
            return 130
        return 0

    return run(build_parser(prog), argv, ablate)  # OSError: missing files too


if __name__ == "__main__":
    sys.exit(main(prog="python -m bidsnet_lib.commands.ablate"))
