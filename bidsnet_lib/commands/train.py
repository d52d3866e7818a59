"""`bidsnet train`: flags onto TrainConfig, then the Trainer (bidsnet_lib.train).

On a CPU the command starts ``--processes`` local processes (default: as many as there are
cores, a divisor of the batch), which split each batch between them: the fastest setting that
trains the same run (on 2 cores 1.77x one thread at 128 px, 1.92x at 256; two threads: 1.58x,
1.52x; ``bench/trainer.py``, docs/benchmarks.md).
On GPUs: ``torchrun --nproc_per_node=N -m bidsnet_lib.commands.train ...`` (the same flags; one
process group, DistributedDataParallel; the batch is then per process).
"""

import argparse
import dataclasses
import datetime
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
import torch.distributed as dist

from bidsnet_lib.checkpoint import TRAIN_FORMAT, load_checkpoint
from bidsnet_lib.commands import Parser, fail, positive_int
from bidsnet_lib.model import INPUT_FILLS, OUTPUTS
from bidsnet_lib.plumbing import resolve_device
from bidsnet_lib.train import (
    PATH_FIELDS,
    PRESETS,
    RESUME_OVERRIDABLE,
    TrainConfig,
    Trainer,
    check_fresh_dir,
    check_resumable,
    checkpoint_model_config,
    init_distributed,
    model_config_differences,
    photo_identity,
    read_run_config,
    require_checkpoint,
    resolve_paths,
)
from bidsnet_lib.vgg import load_vgg19_features

# flag dest -> TrainConfig field ("loss.x" for LossConfig fields)
FLAG_FIELDS = {
    "data": "data", "val_data": "val_data", "steps": "steps", "batch_size": "batch_size",
    "processes": "processes", "size": "size", "lr_g": "lr_g", "lr_d": "lr_d", "grad_clip": "grad_clip", "ema_decay": "ema_decay",
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


def _processes(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected auto or a number of processes >= 1") from None


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def auto_processes(batch_size: int, cores: int) -> int:
    """The most processes, up to one a core, that split ``batch_size`` evenly."""
    return max(n for n in range(1, min(cores, batch_size) + 1) if batch_size % n == 0)


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
    p.add_argument("--processes", type=_processes, default="auto", metavar="N|auto",
                   help="local training processes that split each batch (DistributedDataParallel, gloo); "
                        "auto: on a CPU, the most that divide the batch, up to one a core (the fastest "
                        "setting measured, docs/benchmarks.md), 1 on a GPU (use torchrun for several); "
                        "a resumed run keeps its own")
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
        if value is not None and value != "auto":
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
    # Folders and processes are not the preset's business: unless given again, they stay the run's.
    return dataclasses.replace(PRESETS[args.preset](), processes=saved.processes,
                               **{name: getattr(saved, name) for name in PATH_FIELDS})


def resolve_processes(args: argparse.Namespace, config: TrainConfig, device) -> TrainConfig:
    """``--processes auto`` settled for a new run (a resumed one keeps its config's)."""
    on_cpu = (device.type if device is not None else resolve_device(None).type) == "cpu"
    if args.processes == "auto" and not args.resume:
        config = dataclasses.replace(config, processes=auto_processes(config.batch_size, usable_cores())
                                     if on_cpu else 1)
    if config.processes > 1 and not on_cpu:
        raise ValueError(f"--processes: got {config.processes}, expected 1 on a GPU (several GPUs: "
                         "torchrun --nproc_per_node=N -m bidsnet_lib.commands.train ...)")
    return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RANK_0_PID = "BIDSNET_TRAIN_RANK_0_PID"


def end_with_rank_0(pid: int) -> None:
    """In a rank that ``start_other_ranks`` started: exit when rank 0's process is gone (killed
    before it could stop this one), instead of waiting in a collective until the timeout."""
    def watch():
        while os.getppid() == pid:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def preflight(config: TrainConfig, out: str, resume: bool, overwrite: bool) -> None:
    """What the Trainer would refuse before training, checked before other ranks are started, so a
    mistake is one line from this process in a moment: the run folder, the photos, VGG-19's weights."""
    config, out_dir = resolve_paths(config), Path(out)
    if resume:
        latest = require_checkpoint(out_dir)
        checkpoint = load_checkpoint(latest, TRAIN_FORMAT, mmap=True)
        check_resumable(checkpoint, latest, TrainConfig.from_dict(checkpoint["config"]), config, RESUME_OVERRIDABLE)
    else:
        check_fresh_dir(out_dir, overwrite, clear=False)
    photo_identity(config.data)
    if config.loss.perceptual > 0 or config.loss.style > 0:
        load_vgg19_features(config.loss.vgg_weights)  # loaded again by the Trainer: seconds, once


def start_other_ranks(argv: list[str], processes: int) -> list[subprocess.Popen]:
    """Make this process rank 0 of a local gloo group of ``processes`` and start ranks 1.. as
    this command again; the cores are shared out among them. Rank 0 does all the talking (errors,
    progress, files); a signal reaches it alone (the others run in their own session) and it
    tells them, so all stop at the same step, as under torchrun."""
    threads = max(1, usable_cores() // processes)
    port = free_port()
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(processes),
           "LOCAL_WORLD_SIZE": str(processes), "OMP_NUM_THREADS": str(threads), RANK_0_PID: str(os.getpid())}
    command = [sys.executable, "-m", "bidsnet_lib.commands.train", *argv, "--processes", str(processes)]
    ranks = [subprocess.Popen(command, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, start_new_session=True)
             for r in range(1, processes)]
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=processes,
                            timeout=datetime.timedelta(minutes=10))
    return ranks


def stop_other_ranks(ranks: list[subprocess.Popen], grace: float) -> None:
    """Wait ``grace`` seconds for the other ranks to end (they finish with rank 0), then kill them."""
    deadline = time.monotonic() + grace
    for rank in ranks:
        try:
            rank.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            rank.kill()
            rank.wait()


def main(argv: list[str] | None = None, prog: str = "bidsnet train") -> int:
    try:  # argparse exits on bad usage (2) and --help (0); main returns the status instead
        args = build_parser(prog).parse_args(argv)
    except SystemExit as stop:
        return int(stop.code or 0)
    if RANK_0_PID in os.environ:
        end_with_rank_0(int(os.environ[RANK_0_PID]))
    distributed = init_distributed()
    ranks, threads, trained = [], torch.get_num_threads(), False
    try:
        try:
            base = resume_base(args) if args.resume else PRESETS[args.preset or "small"]()
            config = config_from_args(args, base)
            device = None if args.device is None else resolve_device(args.device)
            if not distributed:
                config = resolve_processes(args, config, device)
                if config.processes > 1:
                    preflight(config, args.out, args.resume, args.overwrite)
                    ranks = start_other_ranks(list(sys.argv[1:] if argv is None else argv), config.processes)
                    distributed = True
            trainer = Trainer(config, args.out, resume=args.resume, device=device,
                              progress=not args.no_progress, overwrite=args.overwrite)
        except (FileNotFoundError, ValueError, TypeError) as error:
            # Bad flags, a missing folder, missing VGG-19 weights: the message is the whole story,
            # told once (every process of a run finds the same).
            return fail(prog, error) if not distributed or dist.get_rank() == 0 else 2
        start, first = time.perf_counter(), trainer.step
        try:
            trainer.train()
            trained = True
        except FloatingPointError as error:
            if trainer.is_main:
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
        if ranks:
            stop_other_ranks(ranks, grace=60 if trained else 5)
            torch.set_num_threads(threads)


if __name__ == "__main__":  # torchrun -m bidsnet_lib.commands.train ...
    sys.exit(main())
