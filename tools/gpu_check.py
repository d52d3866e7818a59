"""GPU-ready in one command (`make gpu-check`): on a CUDA machine, unattended, within 9 minutes.

    python tools/gpu_check.py [--out build/gpu_check] [--budget 540]

1. the machine: GPU, memory, torch and CUDA versions;
2. the training step timed at 256 px, batch 8: the paper preset (``TrainConfig.paper()``, the
   default recipe, what notebook 06 trains on a GPU) in float32 and under float16 autocast, and the
   small preset (the CPU default) at its 128 px, batch 4; median seconds a step and peak GPU memory;
3. notebook 06's full run projected from (2): its 20,000 paper-preset steps on this GPU, and on a
   T4 (Colab's free GPU) by the ratio of the two GPUs' published float16 tensor-core throughput
   (``GPU_SPECS``; the conversion is written into the report);
4. the default recipe trained for ``TRAIN_SECONDS`` on the course photos through ``bidsnet
   train`` (steps from (2)'s pace; stopped there if slower) and exported with ``bidsnet export``;
5. notebook 06's resume on the GPU at its full K: how far the resumed paper-preset generator
   drifts from the straight run's (the tolerance notebook 06 states), when time is left;
6. the full-mode rehearsal on CUDA (``tools/rehearsal.py``: every notebook, the GPU path) in what
   is left of the budget, its table a row a notebook (a stopped rehearsal keeps the rows it has).

Everything goes to one file, ``OUT/report.md``, rewritten after each stage, so a stopped run
keeps what it measured; each stage has its own time limit, so the whole stays within the budget.
Without CUDA it stops at once with one line saying so. It downloads nothing: VGG-19's ImageNet
weights when torch.hub's cache has them, else the explicit random backbone (the report says which;
a step costs the same with either); the photos are the course's own (``data.course_photo_folders``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 540.0  # s: 9 minutes
NOTEBOOK_06_STEPS = 20_000  # notebook 06, full mode on a GPU: the paper preset for 20,000 steps
RESUME_K = 25  # notebook 06's K_GPU
DRIFT_TOLERANCE = 0.10  # notebook 06's DRIFT_TOLERANCE
TRAIN_SECONDS = 150.0  # s for `bidsnet train` ("a few minutes"): stopped there, exported all the same
TRAIN_START = 45.0  # s of it for start-up, validations and checkpoints (the steps get the rest)
EXPORT_SECONDS = 60.0
REHEARSAL_MIN = 240.0  # s kept for the rehearsal, run last in what is left
MARGIN = 15.0  # s kept back for writing the report
clock = time.perf_counter  # the budget's clock (tests run main() on a made-up one)

# Published peak throughput (TFLOP/s, dense: float16 on tensor cores, float32 without) and memory
# bandwidth (GB/s), from the vendors' data sheets; matched by a name substring, first match wins.
GPU_SPECS = {
    "H200": (989.0, 67.0, 4800.0),
    "H100 PCIe": (756.0, 51.0, 2000.0),
    "H100": (989.0, 67.0, 3350.0),  # SXM
    "A100": (312.0, 19.5, 1555.0),
    "A10G": (125.0, 31.2, 600.0),
    "L4": (121.0, 30.3, 300.0),
    "V100": (125.0, 15.7, 900.0),
    "T4": (65.0, 8.1, 320.0),
}


def gpu_spec(name: str) -> tuple[str, tuple[float, float, float]] | None:
    """(the matching key, (fp16 tensor TFLOP/s, fp32 TFLOP/s, GB/s)) for a CUDA device name such
    as 'NVIDIA H100 80GB HBM3', or None for a GPU not in ``GPU_SPECS``."""
    if not isinstance(name, str):
        raise TypeError(f"name: got {name!r}, expected a device name string")
    for key, spec in GPU_SPECS.items():
        if key.lower() in name.lower():
            return key, spec
    return None


@dataclasses.dataclass
class StepTiming:
    """One timed training configuration: median seconds a step over ``steps`` timed steps."""

    label: str
    seconds: float
    steps: int
    peak_gib: float


def project(timing: StepTiming, gpu_name: str, steps: int = NOTEBOOK_06_STEPS) -> dict:
    """Notebook 06's ``steps`` training steps at ``timing``'s pace, here and on a T4, with the
    conversion stated; T4 None when this GPU is not in ``GPU_SPECS``."""
    if not isinstance(timing.seconds, int | float) or not timing.seconds > 0:
        raise ValueError(f"timing.seconds: got {timing.seconds!r}, expected a number > 0")
    here = timing.seconds * steps
    found = gpu_spec(gpu_name)
    t4 = GPU_SPECS["T4"]
    if found is None:
        return {"here_s": here, "t4_s": None,
                "conversion": f"{gpu_name} is not in tools/gpu_check.py's GPU_SPECS: no T4 projection"}
    key, spec = found
    fp16 = spec[0] / t4[0]
    return {"here_s": here, "t4_s": here * fp16, "t4_bandwidth_s": here * spec[2] / t4[2],
            "conversion": (f"T4 time = this GPU's time x {fp16:.2f}, the ratio of published dense float16 "
                           f"tensor-core peaks ({key} {spec[0]:g} / T4 {t4[0]:g} TFLOP/s), the right ratio for "
                           f"a step that runs under autocast and keeps the tensor cores busy; by memory "
                           f"bandwidth ({spec[2]:g} / {t4[2]:g} GB/s, x {spec[2] / t4[2]:.2f}) the T4 would take "
                           f"{here * spec[2] / t4[2] / 3600:.1f} h. A small GPU is easier to keep busy than a "
                           f"large one, so the real T4 time is likely nearer the lower of the two.")}


def hours(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds / 3600:.1f} h"


class Report:
    """The one report file, rewritten whole after each stage."""

    def __init__(self, path):
        self.path, self.sections = Path(path), []

    def add(self, title: str, body: str) -> None:
        self.sections.append((title, body.rstrip() + "\n"))
        self.write()

    def write(self) -> Path:
        from bidsnet_lib.plumbing import atomic_write

        text = "# make gpu-check\n\n" + "\n".join(f"## {title}\n\n{body}" for title, body in self.sections)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(self.path, text)


def timing_table(timings: list[StepTiming]) -> str:
    rows = ["| configuration | s/step (median) | timed steps | peak GPU memory (GiB) |", "| --- | ---: | ---: | ---: |"]
    rows += [f"| {t.label} | {t.seconds:.3f} | {t.steps} | {t.peak_gib:.1f} |" for t in timings]
    return "\n".join(rows)


def projection_text(timing: StepTiming, gpu_name: str) -> str:
    p = project(timing, gpu_name)
    return (f"Notebook 06 in full mode on a GPU trains the paper preset for {NOTEBOOK_06_STEPS:,} steps "
            f"(float16 autocast, batch 8, 256 px); at the measured {timing.seconds:.3f} s a step "
            f"({timing.label}), training steps alone (validation, samples and checkpoints add a few %):\n\n"
            f"- on this GPU ({gpu_name}): {hours(p['here_s'])}\n"
            f"- on a T4: {hours(p['t4_s'])}\n\n"
            f"Conversion: {p['conversion']}\n")


def require_cuda() -> str:
    """The CUDA device's name, or SystemExit with one line saying what is missing."""
    import torch

    if not torch.cuda.is_available():
        raise SystemExit(f"make gpu-check: no CUDA device here (torch {torch.__version__}, "
                         f"CUDA build {torch.version.cuda or 'none'}): run it on a machine with an NVIDIA "
                         "GPU and a CUDA build of torch; `make rehearsal` is the CPU check")
    return torch.cuda.get_device_name(0)


def course_folders() -> tuple[Path, Path]:
    from bidsnet_lib.data import course_photo_folders

    return course_photo_folders(Path(tempfile.mkdtemp(prefix="gpu_check_photos_")), held_out="val")


def vgg_choice() -> str:
    """'imagenet' when torch.hub's cache holds VGG-19's weights, else the explicit 'random' (no
    548 MB download inside a 9-minute budget; a step costs the same with either)."""
    from bidsnet_lib.plumbing import hub_checkpoint_dir
    from bidsnet_lib.vgg import VGG19_FILE

    return "imagenet" if (hub_checkpoint_dir() / VGG19_FILE).is_file() else "random"


def time_steps(config, label: str, warmup: int = 3, timed: int = 10, device: str = "cuda") -> StepTiming:
    """Median seconds of ``Trainer.train_step`` (synchronised on a GPU), after ``warmup`` steps."""
    import torch
    from torch.utils.data import default_collate

    from bidsnet_lib.train import EpochItems, EpochSampler, Trainer

    cuda = torch.device(device).type == "cuda"
    trainer = Trainer(config, Path(tempfile.mkdtemp(prefix="gpu_check_time_")) / "run", device=device, progress=False)
    items = EpochItems(trainer.train_set)
    keys = iter(EpochSampler(len(trainer.train_set), seed=0))
    batches = [default_collate([items[next(keys)] for _ in range(config.batch_size)]) for _ in range(4)]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(warmup + timed):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.train_step(batches[i % len(batches)])
        trainer.step += 1
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
    del trainer
    if cuda:
        torch.cuda.empty_cache()
    return StepTiming(label, statistics.median(times[warmup:]), timed, peak)


def resume_drift(config, k: int, device: str = "cuda") -> float:
    """Notebook 06's GPU resume check at K = ``k``: ||resumed - straight|| / ||straight - at K||,
    the generators after 2K steps against the interrupted one's at K."""
    from bidsnet_lib.train import Trainer

    config = dataclasses.replace(config, steps=2 * k, sample_every=0, validate_every=0, log_every=1, checkpoint_every=k)
    straight = Trainer(config, Path(tempfile.mkdtemp()) / "straight", device=device, progress=False)
    straight.train()
    run_dir = Path(tempfile.mkdtemp()) / "interrupted"
    interrupted = Trainer(config, run_dir, device=device, progress=False)
    interrupted.train(until=k)
    at_k = {n: w.detach().clone() for n, w in interrupted.generator.state_dict().items()}
    del interrupted
    resumed = Trainer(config, run_dir, resume=True, device=device, progress=False)
    resumed.train()
    s, r = straight.generator.state_dict(), resumed.generator.state_dict()
    apart = sum((r[n].float() - s[n].float()).pow(2).sum() for n in s).sqrt()
    moved = sum((s[n].float() - at_k[n].float()).pow(2).sum() for n in s).sqrt()
    return (apart / moved).item()


def run(command: list[str], seconds: float, log: Path) -> tuple[int | None, float]:
    """Run ``command`` with its output in ``log``; (exit status or None when stopped at
    ``seconds``, wall seconds). A stopped command is killed with every process it started (the
    rehearsal's kernels start sessions of their own), so nothing outlives the check."""
    import psutil

    start = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            status = process.wait(timeout=max(1.0, seconds))
        except subprocess.TimeoutExpired:
            tree = psutil.Process(process.pid).children(recursive=True)
            for member in [process, *tree]:
                with contextlib.suppress(psutil.Error, ProcessLookupError):
                    member.kill()
            process.wait()
            psutil.wait_procs(tree, timeout=10)
            status = None
    return status, time.perf_counter() - start


def tail(path: Path, lines: int = 25) -> str:
    text = path.read_text(errors="replace").splitlines() if path.is_file() else []
    return "\n".join(text[-lines:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "gpu_check", help="default build/gpu_check")
    parser.add_argument("--budget", type=float, default=BUDGET, help=f"seconds in all (default {BUDGET:g})")
    args = parser.parse_args(argv)
    gpu = require_cuda()
    start = clock()

    def left() -> float:
        return args.budget - (clock() - start)

    import torch

    from bidsnet_lib.train import TrainConfig

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out / "report.md")
    props = torch.cuda.get_device_properties(0)
    report.add("Machine", f"- GPU: {gpu}, {props.total_memory / 2**30:.0f} GiB\n- torch {torch.__version__}, "
                          f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}\n"
                          f"- Python {platform.python_version()}, {os.cpu_count()} CPU cores\n"
                          f"- {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; budget {args.budget:.0f} s")
    failures = []

    # 2-3. Timings and the projection.
    train_dir, val_dir = course_folders()
    vgg = vgg_choice()
    paper = TrainConfig.paper()
    paper = dataclasses.replace(paper, data=(str(train_dir),), val_data=(str(val_dir),),
                                loss=dataclasses.replace(paper.loss, vgg_weights=vgg))
    small = dataclasses.replace(TrainConfig.small(), data=(str(train_dir),), val_data=(str(val_dir),))
    timings = [time_steps(dataclasses.replace(paper, amp=False), "paper, 256 px, batch 8, float32"),
               time_steps(dataclasses.replace(paper, amp=True), "paper, 256 px, batch 8, float16 autocast"),
               time_steps(small, f"small, {small.size} px, batch {small.batch_size}, float32")]
    report.add("Training step", timing_table(timings) + f"\n\nVGG-19 weights: {vgg} (a step costs the same either way).")
    autocast = timings[1] if paper.amp else timings[0]  # what notebook 06 runs: the preset's own amp
    report.add("Notebook 06 on a GPU, projected", projection_text(autocast, gpu))

    # 4. The default recipe (the paper preset) for TRAIN_SECONDS, exported even when stopped.
    run_dir, model = out / "train", out / "model.pt"
    steps = max(10, int((TRAIN_SECONDS - TRAIN_START) / autocast.seconds))
    command = [sys.executable, "-m", "bidsnet_lib.commands.train", "--preset", "paper", "--data", str(train_dir),
               "--val-data", str(val_dir), "--vgg-weights", vgg, "--steps", str(steps), "--validate-every",
               str(max(1, steps // 2)), "--checkpoint-every", str(max(1, steps // 4)), "--out", str(run_dir),
               "--overwrite", "--no-progress"]
    status, took = run(command, TRAIN_SECONDS, out / "train.log")
    exported = (run_dir / "latest.pt").is_file() and run(
        [sys.executable, "-m", "bidsnet_lib.commands.export", str(run_dir), str(model)],
        EXPORT_SECONDS, out / "export.log")[0] == 0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if line.strip()] if (run_dir / "metrics.jsonl").is_file() else []
    psnr = [(r["step"], r["val_psnr"]) for r in rows if "val_psnr" in r]
    done = max((r["step"] for r in rows if "step" in r), default=0)
    if not exported:
        failures.append("training")
    verdict = {0: "trained", None: f"stopped at its {TRAIN_SECONDS:.0f} s"}.get(status, f"FAILED (status {status})")
    report.add("The default recipe, a few minutes", f"`{' '.join(Path(c).name if c == sys.executable else c for c in command)}`\n\n"
               f"{verdict}: step {done} of {steps} in {took:.0f} s; validation PSNR "
               f"(step, dB): {', '.join(f'({s}, {v:.2f})' for s, v in psnr) or 'none'}; "
               + (f"exported to {model} ({model.stat().st_size / 2**20:.1f} MB)" if exported else
                  "NOT exported:\n\n```\n" + tail(out / "train.log") + "\n```"))

    # 5. Notebook 06's GPU resume at its full K (4 K paper steps and three trainers' start).
    if left() - REHEARSAL_MIN > 4 * RESUME_K * autocast.seconds * 1.5 + 30:
        drift = resume_drift(paper, RESUME_K)
        ok = drift < DRIFT_TOLERANCE
        failures += [] if ok else ["resume drift"]
        report.add("Notebook 06's resume on the GPU", f"K = {RESUME_K}: drift {drift:.2%} of the distance trained "
                   f"(notebook 06 allows {DRIFT_TOLERANCE:.0%}): {'ok' if ok else 'ABOVE THE TOLERANCE'}")
    else:
        report.add("Notebook 06's resume on the GPU", f"skipped: {left():.0f} s left")

    # 6. The rehearsal on CUDA, in what is left: its table grows a row a notebook, so a stopped
    # run still reports the notebooks it finished.
    status, took = run([sys.executable, str(ROOT / "tools" / "rehearsal.py"), "--out", str(out / "rehearsal")],
                       left() - MARGIN, out / "rehearsal.log")
    table = out / "rehearsal" / "rehearsal.md"
    verdict = {0: "passed", None: f"stopped after {took:.0f} s (the budget)"}.get(status, f"FAILED (status {status})")
    if status != 0:
        failures.append("rehearsal")
    report.add("Rehearsal on CUDA", f"{verdict} in {took:.0f} s.\n\n" + (table.read_text() if table.is_file() else "")
               + "\n```\n" + tail(out / "rehearsal.log", 12) + "\n```")
    report.add("Result", f"{'FAILED: ' + ', '.join(failures) if failures else 'passed'} in "
               f"{clock() - start:.0f} s (budget {args.budget:.0f} s)")
    print(report.path.read_text())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
