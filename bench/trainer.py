"""Training speed on the CPU: which setting of ``bidsnet train`` gives the most samples per second.

    python bench/trainer.py            # 128 and 256 px; writes its section of docs/benchmarks.md
    python bench/trainer.py --quick    # smoke test: 32 px, a few steps, no file, no torch.compile

Every variant runs ``bidsnet_lib.train.Trainer.train_step`` itself (data loading included: the
loader is the trainer's own) in a fresh process, so thread counts, autocast and compilation
caches never leak between variants. The config is ``TrainConfig.small()`` at the given size, every
step at that size (its progressive-resizing stages left out), batch 4 per process, on the shipped
training photos. Variants: fp32; bfloat16 autocast
(``cpu_bf16``); ``channels_last``; ``torch.compile``; two intra-op threads; two gloo DDP
processes of one thread each (``torchrun``), with batch 4 each (global batch 8) and with batch 2
each (global batch 4, the one-process run split in two: GroupNorm is per sample). The variants take turns
round by round, so that a load change on this shared machine hits them alike, and each row is
the fastest of the rounds (load only ever slows a step). "% of peak" divides the generator's counted FLOPs (forward and
backward; ``FlopCounterMode`` counts convolutions and matrix products, and cannot follow the
critic's R1 double backward) by the step's time, against the fastest of several large fp32
matrix products with the same thread count: a lower bound of the step's real share.
"""

import argparse
import dataclasses
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "data" / "images" / "train"
# name -> (TrainConfig changes, intra-op threads, processes)
VARIANTS = {
    "fp32, 1 thread": ({}, 1, 1),
    "bfloat16 autocast": ({"cpu_bf16": True}, 1, 1),
    "channels_last": ({"channels_last": True}, 1, 1),
    "torch.compile": ({"compile": True}, 1, 1),
    "fp32, 2 threads": ({}, 2, 1),
    "2 gloo processes x 1 thread": ({}, 1, 2),
    # the same global batch as one process: each rank takes half
    "2 gloo processes x 1 thread, batch 2 each": ({"batch_size": 2}, 1, 2),
}


# bfloat16 autocast is emulated on CPUs without bfloat16 units (this one: ~15x slower than fp32);
# it is timed once, on 1 step after 1 of warm-up.
SLOW = {"bfloat16 autocast"}


def worker(spec: dict) -> dict | None:
    """Inside one (torchrun) process: time ``spec["steps"]`` train steps after a warm-up."""
    import torch

    torch.set_num_threads(spec["threads"])
    from torch.utils.flop_counter import FlopCounterMode

    from bidsnet_lib.train import TrainConfig, Trainer, init_distributed

    distributed = init_distributed()
    config = dataclasses.replace(TrainConfig.small(), size=spec["size"], stages=(), data=(spec["data"],),
                                 steps=10**6, validate_every=0, sample_every=0, **spec["changes"])
    scratch = tempfile.TemporaryDirectory(prefix="bench_trainer.")
    trainer = Trainer(config, scratch.name, device="cpu", progress=False)
    batches = iter(trainer.loader())
    for _ in range(spec["warmup"]):
        trainer.train_step(next(batches))
    start = time.perf_counter()
    for _ in range(spec["steps"]):
        trainer.train_step(next(batches))
    seconds = (time.perf_counter() - start) / spec["steps"]
    batch = next(batches)
    with FlopCounterMode(display=False) as counter:  # the generator's forward and backward
        trainer.generator(batch["image"], batch["mask"]).mean().backward()
    result = {"seconds_per_step": seconds, "flops_per_step": counter.get_total_flops() * trainer.world_size,
              "samples_per_step": config.batch_size * trainer.world_size}
    if distributed:
        torch.distributed.destroy_process_group()
    scratch.cleanup()
    return result if trainer.is_main else None


def run_variant(name: str, size: int, steps: int, warmup: int) -> dict:
    changes, threads, processes = VARIANTS[name]
    spec = {"changes": changes, "threads": threads, "size": size, "steps": steps, "warmup": warmup,
            "data": str(PHOTOS)}
    command = [sys.executable, __file__, "--worker", json.dumps(spec)]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={processes}", *command[1:]]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=3600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{name} at {size} px failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def peak_gflops(threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        best = max(best, 4 * 2 * 1024**3 / (time.perf_counter() - start) / 1e9)
    return best


def table(results: dict, names: list[str], sizes: list[int], peaks: dict[int, float]) -> list[str]:
    lines = ["| size | setting | s/step | samples/s | × fp32, 1 thread | % of peak |",
             "|---:|---|---:|---:|---:|---:|"]
    for size in sizes:
        base = None
        for name in names:
            runs = results[(name, size)]  # one round for the SLOW ones
            seconds = min(r["seconds_per_step"] for r in runs)
            samples = runs[0]["samples_per_step"] / seconds
            base = samples if base is None else base
            threads, processes = VARIANTS[name][1], VARIANTS[name][2]
            peak = peaks[threads] * processes  # processes of one thread: one core's peak each
            share = runs[0]["flops_per_step"] / seconds / 1e9 / peak
            lines.append(f"| {size} | {name} | {seconds:.3f} | {samples:.2f} | {samples / base:.2f} | "
                         f"{100 * share:.0f} % |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 32 px, few steps, no file; torch.compile left out (minutes of C++ build)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.worker:
        result = worker(json.loads(args.worker))
        if result is not None:
            print(json.dumps(result))
        return 0
    # size -> (timed steps, warm-up steps): a 256-px step takes ~4x as long
    plan = {32: (2, 1)} if args.quick else {128: (12, 3), 256: (4, 2)}
    rounds = 1 if args.quick else args.rounds
    names = [n for n in VARIANTS if not (args.quick and VARIANTS[n][0].get("compile"))]
    results = {}
    for round_ in range(rounds):
        for size, (steps, warmup) in plan.items():
            for name in names:
                if name in SLOW and round_ > 0:
                    continue
                result = run_variant(name, size, *((1, 1) if name in SLOW and not args.quick else (steps, warmup)))
                results.setdefault((name, size), []).append(result)
                print(f"round {round_ + 1}/{rounds}, {size} px, {name}: {json.dumps(result)}", file=sys.stderr,
                      flush=True)
    peaks = {1: peak_gflops(1), 2: peak_gflops(2)}
    from bidsnet_lib.reports import machine_line, write_section

    lines = table(results, names, list(plan), peaks)
    print("\n".join(lines))
    if not args.quick:
        text = "\n".join([
            "## Training speed on the CPU (`bench/trainer.py`)", "",
            "`TrainConfig.small()` with every step at the row's size, batch 4 per process unless the row says "
            "otherwise; timed steps after "
            "warm-up: " + ", ".join(f"{s} after {w} at {size} px" for size, (s, w) in plan.items())
            + f"; the fastest of {rounds} rounds ({', '.join(sorted(SLOW))}: one round, 1 step after 1); peak: {peaks[1]:.1f} GFLOP/s on 1 thread, {peaks[2]:.1f} on 2.", "",
            *lines, "",
            f"Measured {datetime.date.today()} on {machine_line()}.",
        ])
        write_section(ROOT / "docs" / "benchmarks.md", "bench/trainer.py", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
