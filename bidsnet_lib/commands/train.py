"""`bidsnet train`: flags onto TrainConfig, then the Trainer (bidsnet_lib.train).

A flag for each config field with a ``help`` in its metadata (TrainConfig, and the BIDSNetConfig
and LossConfig fields it exposes). On a CPU the command starts ``--processes`` local processes
(``bidsnet_lib.train.LocalRanks``; default: as many as there are cores, a divisor of the batch),
which split each batch between them: the fastest setting that trains the same run (on 2 cores
1.77x one thread at 128 px, 1.92x at 256; two threads: 1.58x, 1.52x; ``bench/trainer.py``,
docs/benchmarks.md).
On GPUs: ``torchrun --nproc_per_node=N -m bidsnet_lib.commands.train ...`` (the same flags; one
process group, DistributedDataParallel; the batch is then per process).
"""

import argparse
import dataclasses
import signal
import sys
import time
import warnings
from pathlib import Path

import torch.distributed as dist

from bidsnet_lib.commands import (
    USER_ERRORS,
    Parser,
    add_config_flags,
    fail,
    given_fields,
    positive_int,
)
from bidsnet_lib.losses import LossConfig
from bidsnet_lib.model import BIDSNetConfig
from bidsnet_lib.plumbing import resolve_device
from bidsnet_lib.train import (
    PATH_FIELDS,
    PRESETS,
    LocalRanks,
    TrainConfig,
    Trainer,
    checkpoint_model_config,
    init_distributed,
    model_config_differences,
    newest_checkpoint,
    preflight,
    read_run_config,
    settle_processes,
)


def _mask_mix(text: str) -> dict[str, float]:
    """"set1=0.5,set2/train=0.5" -> {"set1": 0.5, "set2/train": 0.5}."""
    try:
        return {k.strip(): float(v) for k, v in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SOURCE=WEIGHT[,SOURCE=WEIGHT...], got {text!r}") from None


def _stages(text: str) -> tuple[tuple[int, float], ...]:
    """"64:0.6,128:0.3" -> ((64, 0.6), (128, 0.3)); "" -> () (no stages)."""
    try:
        return tuple((int(size), float(share)) for size, share in
                     (part.split(":") for part in text.split(",") if part.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SIZE:SHARE[,SIZE:SHARE...], got {text!r}") from None


def _processes(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected auto or a number of processes >= 1") from None


def build_parser(prog: str = "bidsnet train") -> Parser:
    p = Parser(
        prog=prog,
        description="Train BIDS-Net (also: torchrun --nproc_per_node=N -m bidsnet_lib.commands.train ...). "
                    "Flags override the preset's TrainConfig fields.",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help=(
        "config preset of a new run: small (the default; TrainConfig.small(), the CPU recipe of "
        "bench/time_to_quality.py: the small model on a Telea fill with a residual head, L1 + SSIM, Adam "
        "2e-4 constant, 128-px crops) or paper (TrainConfig.paper(), for a GPU: 256 px, the critic "
        "and VGG-19 losses)"))
    p.add_argument("--out", required=True, metavar="DIR", help="run directory, e.g. runs/NAME")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its latest.pt; the command that started it plus "
                        "--resume works (flags must agree with the run's config; a larger --steps extends it)")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in an --out folder that holds files but no checkpoint")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: the GPU if any)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    # Flags whose text is no field value: --processes also takes auto (settled once the device
    # is known), --mask-mix takes SRC=W pairs, --stages SIZE:SHARE pairs.
    add_config_flags(p, TrainConfig, processes={"type": _processes, "default": "auto", "metavar": "N|auto"},
                     mask_mix={"type": _mask_mix}, stages={"type": _stages, "nargs": None})
    add_config_flags(p, BIDSNetConfig)
    add_config_flags(p, LossConfig)
    return p


def config_from_args(args: argparse.Namespace, base: TrainConfig) -> TrainConfig:
    """``base`` with every flag that was given written onto its field."""
    top, model, loss = (given_fields(args, c) for c in (TrainConfig, BIDSNetConfig, LossConfig))
    if top.get("processes") == "auto":
        del top["processes"]
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
    if newest_checkpoint(args.out)[0] is None:
        return PRESETS[args.preset or "small"]()  # Trainer explains what the folder lacks
    saved = read_run_config(args.out)
    if not args.preset:
        return saved
    # Folders and processes are not the preset's business: unless given again, they stay the run's.
    return dataclasses.replace(PRESETS[args.preset](), processes=saved.processes,
                               **{name: getattr(saved, name) for name in PATH_FIELDS})


def main(argv: list[str] | None = None, prog: str = "bidsnet train") -> int:
    try:  # argparse exits on bad usage (2) and --help (0); main returns the status instead
        args = build_parser(prog).parse_args(argv)
    except SystemExit as stop:
        return int(stop.code or 0)
    distributed = init_distributed()
    ranks, trained, checked, trainer = None, False, None, None
    try:
        try:
            base = resume_base(args) if args.resume else PRESETS[args.preset or "small"]()
            config = config_from_args(args, base)
            device = None if args.device is None else resolve_device(args.device)
            with warnings.catch_warnings(record=True) as notes:  # one line each (a damaged checkpoint skipped)
                warnings.simplefilter("always")
                if not distributed:
                    config = settle_processes(config, device or resolve_device(None),
                                              auto=args.processes == "auto", resume=args.resume)
                    if config.processes > 1:  # checked before the others start: a mistake is one line
                        checked = preflight(config, args.out, resume=args.resume, overwrite=args.overwrite)
                        command = [*(sys.argv[1:] if argv is None else argv), "--processes", str(config.processes)]
                        ranks = LocalRanks("bidsnet_lib.commands.train", command, config.processes)
                        distributed = True
                trainer = Trainer(config, args.out, resume=args.resume, device=device,
                                  progress=not args.no_progress, overwrite=args.overwrite, checked=checked)
            for note in notes if trainer.is_main else ():
                print(f"{prog}: note: {note.message}", file=sys.stderr)
        except USER_ERRORS as error:
            # Bad flags, a missing folder, missing VGG-19 weights, an unusable --out: the message
            # is the whole story, told once (every process of a run finds the same).
            return fail(prog, error) if not distributed or dist.get_rank() == 0 else 2
        start, first = time.perf_counter(), trainer.step
        try:
            with warnings.catch_warnings():  # e.g. an unreadable photo skipped: one line, not Python's two
                warnings.showwarning = lambda message, *_, **__: print(f"{prog}: warning: {message}", file=sys.stderr)
                trainer.train()
            trained = True
        except FloatingPointError as error:
            if trainer.is_main:
                print(f"{prog}: error: {error}", file=sys.stderr)
            return 1  # the run diverged: not a usage error
        except OSError as error:  # a full disk at a checkpoint: said once, the last good checkpoint kept
            return fail(prog, error) if trainer.is_main else 2
        except RuntimeError as error:  # another rank died mid-run: gloo's error, then its own last words
            if not ranks or ranks.failed() is None:
                raise
            del error  # gloo's "Connection closed by peer": the other rank's own line says why
            print(f"{prog}: error: {ranks.failure(ranks.failed(), 'mid-run')}; the run stops at its last checkpoint, "
                  f"continue with: bidsnet train --out {args.out} --resume", file=sys.stderr)
            return 1
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
        if trainer is not None:  # the run folder's lock, also when set-up failed after the preflight
            trainer.close()
        elif checked is not None and checked.lock is not None:
            checked.lock.release()
        if ranks and not trained:  # the others end now, before they can add tracebacks to rank 0's line
            ranks.stop(grace=0)
        if distributed:
            dist.destroy_process_group()
        if ranks and trained:
            ranks.stop(grace=60)


if __name__ == "__main__":  # torchrun -m bidsnet_lib.commands.train ...
    sys.exit(main())
