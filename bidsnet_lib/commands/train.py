"""`bidsnet train`: flags onto TrainConfig, then the Trainer (bidsnet_lib.train).

Several processes: ``torchrun --nproc_per_node=N -m bidsnet_lib.commands.train ...`` (the same
flags; one process group, DistributedDataParallel).
"""

import argparse
import dataclasses
import signal
import sys
import time
from pathlib import Path

import torch.distributed as dist

from bidsnet_lib.commands import Parser, fail
from bidsnet_lib.model import INPUT_FILLS, OUTPUTS
from bidsnet_lib.plumbing import resolve_device
from bidsnet_lib.runs import PATH_FIELDS
from bidsnet_lib.train import (
    PRESETS,
    TrainConfig,
    Trainer,
    checkpoint_model_config,
    init_distributed,
    model_config_differences,
    read_run_config,
)

# flag dest -> TrainConfig field ("loss.x" for LossConfig fields)
FLAG_FIELDS = {
    "data": "data", "val_data": "val_data", "steps": "steps", "batch_size": "batch_size",
    "size": "size", "lr_g": "lr_g", "lr_d": "lr_d", "grad_clip": "grad_clip", "ema_decay": "ema_decay",
    "seed": "seed", "deterministic": "deterministic", "amp": "amp", "cpu_bf16": "cpu_bf16",
    "channels_last": "channels_last", "compile": "compile",
    "num_workers": "num_workers", "log_every": "log_every", "sample_every": "sample_every",
    "validate_every": "validate_every", "checkpoint_every": "checkpoint_every",
    "keep_every": "keep_every", "val_size": "val_size", "mask_folder": "mask_folder",
    "mask_mix": "mask_mix", "vgg_weights": "loss.vgg_weights", "perceptual": "loss.perceptual",
    "style": "loss.style", "adversarial": "loss.adversarial", "hole": "loss.hole", "valid": "loss.valid",
    "r1": "loss.r1", "ssim": "loss.ssim", "init": "init", "input_fill": "model.input_fill", "output": "model.output",
}


def _mask_mix(text: str) -> dict[str, float]:
    """"set1=0.5,set2/train=0.5" -> {"set1": 0.5, "set2/train": 0.5}."""
    try:
        return {k.strip(): float(v) for k, v in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SOURCE=WEIGHT[,SOURCE=WEIGHT...], got {text!r}") from None


def build_parser(prog: str = "bidsnet train") -> Parser:
    p = Parser(
        prog=prog,
        description="Train BIDS-Net (also: torchrun --nproc_per_node=N -m bidsnet_lib.commands.train ...). "
                    "Flags override the preset's TrainConfig fields.",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help="config preset of a new run (default small)")
    p.add_argument("--data", nargs="+", metavar="DIR", help="folders of training photos (recursive)")
    p.add_argument("--out", required=True, metavar="DIR", help="run directory, e.g. runs/NAME")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its latest.pt; the command that started it plus "
                        "--resume works (flags must agree with the run's config; a larger --steps extends it)")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in an --out folder that holds files but no checkpoint")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="start a new run from this checkpoint's weights (inference or training; "
                        "fine-tune on your own --data); the model config comes from it")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: the GPU if any)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("TrainConfig fields")
    g.add_argument("--val-data", nargs="+", metavar="DIR", help="held-out photos (default: --data)")
    for flag, kind in (("steps", int), ("batch-size", int), ("size", int), ("lr-g", float), ("lr-d", float),
                       ("grad-clip", float), ("ema-decay", float), ("seed", int), ("num-workers", int),
                       ("log-every", int), ("sample-every", int), ("validate-every", int),
                       ("checkpoint-every", int), ("keep-every", int), ("val-size", int)):
        g.add_argument(f"--{flag}", type=kind, metavar=kind.__name__.upper())
    for flag in ("deterministic", "amp", "cpu-bf16", "channels-last", "compile"):
        g.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction)
    g.add_argument("--input-fill", choices=INPUT_FILLS, help="holes on input: zeros, or a Telea fill")
    g.add_argument("--output", choices=OUTPUTS, help="the head predicts the image, or a residual on the fill")
    g.add_argument("--mask-folder", metavar="DIR", help="external masks (use with --mask-mix folder=W)")
    g.add_argument("--mask-mix", type=_mask_mix, metavar="SRC=W,...", help="e.g. set1=0.5,set2/train=0.5")
    g = p.add_argument_group("LossConfig fields")
    g.add_argument("--vgg-weights", metavar="imagenet|random|PATH",
                   help="VGG-19 weights for the perceptual and style losses")
    for flag in ("perceptual", "style", "adversarial", "hole", "valid", "r1", "ssim"):
        g.add_argument(f"--{flag}", type=float, metavar="W", help=f"weight of the {flag} term")
    return p


def config_from_args(args: argparse.Namespace, base: TrainConfig) -> TrainConfig:
    """``base`` with every flag that was given written onto its field."""
    top, loss, model = {}, {}, {}
    for dest, name in FLAG_FIELDS.items():
        value = getattr(args, dest, None)
        if value is not None:
            if name.startswith("loss."):
                loss[name[5:]] = value
            elif name.startswith("model."):
                model[name[6:]] = value
            else:
                top[name] = tuple(value) if isinstance(value, list) else value
    if top.get("init") is not None:
        init = Path(top["init"]).resolve()
        top["init"] = str(init)
        base = dataclasses.replace(base, model=checkpoint_model_config(init))
        differ = model_config_differences(base.model, dataclasses.replace(base.model, **model))
        if differ:
            raise ValueError(f"--init {init}: model flags conflict with the checkpoint's model: "
                             + "; ".join(differ))
    config = dataclasses.replace(base, model=dataclasses.replace(base.model, **model),
                                 loss=dataclasses.replace(base.loss, **loss), **top)
    if args.vgg_weights is not None and config.loss.perceptual == 0 and config.loss.style == 0:
        raise ValueError(f"--vgg-weights {args.vgg_weights}: no effect, the perceptual and style weights "
                         f"are 0 (the small preset's choice); add e.g. --perceptual 0.1 --style 250")
    return config


def resume_base(args: argparse.Namespace) -> TrainConfig:
    """What flags are written onto on ``--resume``: the run's saved config, or, when the command
    names ``--preset`` (the command that started the run, repeated), that preset, so that what
    the preset says is compared with the run too."""
    if not (Path(args.out) / "latest.pt").is_file():
        return PRESETS[args.preset or "small"]()  # Trainer explains what the folder lacks
    saved = read_run_config(args.out)
    if not args.preset:
        return saved
    # Folders are not the preset's business: unless given again, they stay the run's.
    return dataclasses.replace(PRESETS[args.preset](), **{name: getattr(saved, name) for name in PATH_FIELDS})


def main(argv: list[str] | None = None, prog: str = "bidsnet train") -> int:
    try:  # argparse exits on bad usage (2) and --help (0); main returns the status instead
        args = build_parser(prog).parse_args(argv)
    except SystemExit as stop:
        return int(stop.code or 0)
    distributed = init_distributed()
    try:
        try:
            base = resume_base(args) if args.resume else PRESETS[args.preset or "small"]()
            config = config_from_args(args, base)
            device = None if args.device is None else resolve_device(args.device)
            trainer = Trainer(config, args.out, resume=args.resume, device=device,
                              progress=not args.no_progress, overwrite=args.overwrite)
        except (FileNotFoundError, ValueError, TypeError) as error:
            # Bad flags, a missing folder, missing VGG-19 weights: the message is the whole story.
            return fail(prog, error)
        start, first = time.perf_counter(), trainer.step
        try:
            trainer.train()
        except FloatingPointError as error:
            print(f"{prog}: error: {error}", file=sys.stderr)
            return 1  # the run diverged: not a usage error
        if trainer.is_main:
            seconds = time.perf_counter() - start
            print(f"trained steps {first}-{trainer.step} in {seconds:.1f} s "
                  f"({(trainer.step - first) / max(seconds, 1e-9):.2f} steps/s, {trainer.world_size} process(es)); "
                  f"checkpoint {trainer.out_dir / 'latest.pt'}")
        if trainer.stopped_by is not None:
            if trainer.is_main:
                name = signal.Signals(trainer.stopped_by).name
                print(f"{prog}: stopped by {name} at step {trainer.step}, checkpoint saved; continue with: "
                      f"bidsnet train --out {args.out} --resume", file=sys.stderr)
            return 128 + trainer.stopped_by  # the shell's convention for "ended by a signal"
        return 0
    finally:
        if distributed:
            dist.destroy_process_group()


if __name__ == "__main__":  # torchrun -m bidsnet_lib.commands.train ...
    sys.exit(main())
