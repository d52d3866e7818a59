"""Time to quality: how many CPU-minutes a training recipe needs, from scratch, to match the shipped model.

    python bench/time_to_quality.py                          # recipes not measured yet, 60 CPU-minutes each
    python bench/time_to_quality.py --recipes today --budget 60 --retrain
    python bench/time_to_quality.py --profile                # where one step of "today" spends its time
    python bench/time_to_quality.py --quick --out DIR        # smoke test: 32 px, 4 photos, 1 process, seconds

A recipe (``RECIPES``: the flags of ``bidsnet train`` and the ``TrainConfig`` they mean) trains from
scratch on ``data/images/train`` through the command as users run it (``--processes auto``: one
process a core on this CPU, splitting each batch). The budget is converted to a step count first,
from a short calibration run of the same command (its process tree's CPU seconds per step, and
its start-up), so that a schedule knows its length. The run keeps 10 milestone checkpoints evenly
over its steps (``--keep-every``) and records each one's CPU-minutes.

CPU-minutes: the user + system CPU time of the training processes (rank 0, the ranks it starts,
their children), sampled every half second and read exactly from ``os.wait4`` at the end; a
milestone gets the value at its file's write time. On an idle machine this is about wall time x
cores (a little less: a rank waiting for the other at the gradient all-reduce sleeps); on this
shared machine wall time stretches with the load, CPU time hardly does, so the curves use CPU
time and the tables show wall x cores beside it.

Afterwards, outside the budget, every milestone's EMA weights are scored on ``data/images/val`` at
256 px through ``Inpainter`` (working size 256, mirror average: how the shipped model is used)
by ``bidsnet_lib.evaluate.evaluate``, the function behind ``bidsnet evaluate``: the shipped fixed
masks, 2 per group, against Telea, Navier-Stokes and biharmonic (cached outputs). A score is the
difference to the group's best baseline (by mean) on PSNR and on SSIM; the headline is its mean
over the Set I 30-40, 40-50 and 50-60 % bins. The shipped model, scored the same way, is the
reference line; "reached" means both headline differences at least the shipped model's.

Results (``docs/time_to_quality/results.json``) are rewritten atomically as each recipe finishes;
a measured recipe is not trained again unless ``--retrain``; a run stopped by Ctrl-C or SIGTERM
ends at a step boundary with a checkpoint and continues (``--resume`` of the same command) when
the script is started again.
"""

import argparse
import dataclasses
import datetime
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "data" / "images" / "train"
VAL = ROOT / "data" / "images" / "val"
RESULTS = ROOT / "docs" / "time_to_quality"
RUNS = ROOT / "runs" / "time_to_quality"
MILESTONES = 10
HEADLINE = ("Set I 30-40", "Set I 40-50", "Set I 50-60")
BASELINES = ("telea", "ns", "biharmonic")
# Fields the bench sets on every run (or that only say how it is watched): left out when the
# command's config is compared with the recipe's.
BENCH_FIELDS = ("data", "val_data", "steps", "keep_every", "checkpoint_every", "processes", "log_every")
# --quick: the smallest run that still goes through every part (as flags and as config changes).
QUICK_CHANGES = {"size": 32, "val_size": 4, "log_every": 2}


@dataclass(frozen=True)
class Recipe:
    """A way to train: ``bidsnet train`` flags and the TrainConfig they mean (checked against the
    config the command writes)."""

    flags: tuple[str, ...]
    config: Callable
    about: str


def _small(**changes):
    from bidsnet_lib.train import TrainConfig

    return dataclasses.replace(TrainConfig.small(), **changes)


# The levers (issue 25), each alone on top of "today" (TrainConfig.small(), the default: the
# shipped model's last run, bidsnet_lib/checkpoints/MODEL_CARD.md run 5, from scratch), then
# together. Cosine decay after a short linear warm-up lets a higher peak rate be used early
# (Loshchilov & Hutter, SGDR, ICLR 2017; Goyal et al. 2017 for the warm-up); progressive resizing
# trains most steps on small crops, which cost a quarter of the time each (fast.ai's DAWNBench
# entry; Tan & Le, EfficientNetV2, 2021).
PRESET_FLAGS = ("--preset", "small")
COSINE = {"lr_schedule": "cosine", "warmup_steps": 100, "lr_g": 8e-4}
COSINE_FLAGS = ("--lr-schedule", "cosine", "--warmup-steps", "100", "--lr-g", "8e-4")
STAGES = {"stages": ((64, 0.7),)}
STAGES_FLAGS = ("--stages", "64:0.7")

RECIPES = {
    "today": Recipe(
        flags=PRESET_FLAGS,
        config=_small,
        about="the shipped model's last run (bidsnet_lib/checkpoints/MODEL_CARD.md, run 5) from scratch: "
              "Telea input fill, residual head, hole/valid L1 + 2 x (1 - SSIM), no critic, Adam 2e-4 "
              "constant, 128 px, batch 4 (TrainConfig.small(), the default)",
    ),
    "cosine": Recipe(
        flags=PRESET_FLAGS + COSINE_FLAGS,
        config=lambda: _small(**COSINE),
        about="today, with a 100-step linear warm-up to a 4x higher peak (8e-4) and a cosine decay to 0",
    ),
    "stages": Recipe(
        flags=PRESET_FLAGS + STAGES_FLAGS,
        config=lambda: _small(**STAGES),
        about="today, with the first 70 % of the steps on 64-px crops (progressive resizing), then 128 px",
    ),
    "fast": Recipe(
        flags=PRESET_FLAGS + COSINE_FLAGS + STAGES_FLAGS,
        config=lambda: _small(**COSINE, **STAGES),
        about="today with both levers: cosine at a peak of 8e-4 after 100 warm-up steps, 70 % of the steps at 64 px",
    ),
}


# ----------------------------------------------------------------------------- CPU accounting
def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its live descendants, each with what it has
    reaped (a reaped child's time moves into its parent's); NaN once ``pid`` has ended."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return math.nan
    total = 0.0
    for process in processes:
        try:
            t = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def run_watched(command: list[str], log: Path, env: dict, poll: float, watch=None) -> dict:
    """Run ``command`` to its end, sampling its process tree's CPU every ``poll`` s (``watch(now,
    cpu)`` after each sample). SIGINT/SIGTERM here are passed on once, as SIGTERM: the trainer then
    stops at a step boundary with a checkpoint. Returns status, CPU and wall seconds, samples."""
    start = time.time()
    with open(log, "ab") as out:
        # Its own session: a Ctrl-C in the terminal reaches only this script, which passes on one
        # SIGTERM (a second signal would kill the trainer without its checkpoint).
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                 start_new_session=True)
    stopped = []

    def forward(signum, frame):
        if not stopped:
            stopped.append(signum)
            child.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    samples, loads = [(start, 0.0)], []
    try:
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            cpu = tree_cpu_seconds(child.pid)
            # Monotone: a rank that has exited but is not reaped yet drops out for a moment.
            now, cpu = time.time(), max(cpu if math.isfinite(cpu) else 0.0, samples[-1][1])
            samples.append((now, cpu))
            loads.append(os.getloadavg()[0])
            if watch is not None:
                watch(now, cpu)
            time.sleep(poll)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    child.returncode = os.waitstatus_to_exitcode(status)
    end, cpu = time.time(), usage.ru_utime + usage.ru_stime  # exact: the whole reaped tree
    samples.append((end, max(cpu, samples[-1][1])))
    if watch is not None:
        watch(end, samples[-1][1])
    return {"status": child.returncode, "cpu_s": cpu, "wall_s": end - start, "samples": samples,
            "stopped_by": stopped[0] if stopped else None, "loads": loads}


def cpu_at(samples: list[tuple[float, float]], when: float) -> float:
    """The sampled CPU seconds at wall time ``when``, linearly between samples."""
    import numpy as np

    times, cpus = zip(*samples, strict=True)
    return float(np.interp(when, times, cpus))


def fit_rate(rows: list[tuple[int, float]]) -> dict:
    """CPU seconds per step and start-up CPU seconds from (step, CPU) points of a calibration run:
    a least-squares line through all but the first point (its steps still warm up)."""
    import numpy as np

    if len(rows) < 3:
        raise ValueError(f"rows: got {len(rows)} logged steps, expected at least 3 (a longer calibration)")
    steps, cpus = zip(*rows[1:], strict=True)
    slope, intercept = np.polyfit(steps, cpus, 1)
    if not slope > 0:
        raise ValueError(f"calibration: got {slope!r} CPU seconds a step, expected > 0")
    return {"cpu_s_per_step": float(slope), "startup_cpu_s": float(max(intercept, 0.0)), "points": list(rows)}


def steps_for_budget(budget_minutes: float, rate: dict) -> int:
    """The step count whose predicted CPU time (start-up + steps) fits the budget, a multiple of
    ``MILESTONES`` (at least that many)."""
    steps = (60 * budget_minutes - rate["startup_cpu_s"]) / rate["cpu_s_per_step"]
    return max(MILESTONES, int(steps) // MILESTONES * MILESTONES)


# ----------------------------------------------------------------------------- training runs
def train_command(recipe: Recipe, data: Path, out: Path, steps: int, keep_every: int, extra=()) -> list[str]:
    # `bidsnet train` as the console script runs it (python -m keeps this interpreter and path).
    return [sys.executable, "-m", "bidsnet_lib.cli", "train", *recipe.flags, "--data", str(data),
            "--val-data", str(VAL), "--out", str(out), "--steps", str(steps), "--keep-every", str(keep_every),
            "--checkpoint-every", str(keep_every or steps), "--no-progress", *extra]


def check_config(recipe: Recipe, run_dir: Path, changes: dict) -> None:
    """The config the command wrote must be the recipe's (but for the bench's own fields)."""
    from bidsnet_lib.train import TrainConfig

    made = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    meant = dataclasses.replace(recipe.config(), **changes)
    differ = [f"{f.name}: flags give {getattr(made, f.name)!r}, config says {getattr(meant, f.name)!r}"
              for f in dataclasses.fields(TrainConfig)
              if f.name not in BENCH_FIELDS and getattr(made, f.name) != getattr(meant, f.name)]
    if differ:
        raise ValueError("recipe: its flags and its TrainConfig disagree: " + "; ".join(differ))


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line being written right now
            break
    return rows


def _fail(what: str, run: dict, log: Path) -> RuntimeError:
    tail = log.read_text(errors="replace")[-3000:] if log.is_file() else ""
    return RuntimeError(f"{what} ended with status {run['status']}; the end of {log}:\n{tail}")


def calibrate(recipe: Recipe, run_dir: Path, data: Path, steps: int, env: dict, extra, changes, poll) -> dict:
    """CPU seconds per step and at start-up of the recipe's own command, from a short run."""
    out = run_dir / "calibration"
    shutil.rmtree(out, ignore_errors=True)
    rows: list[tuple[int, float]] = []

    def watch(now, cpu):
        logged = [r["step"] for r in _read_rows(out / "metrics.jsonl") if "steps_per_s" in r]
        rows.extend((step, cpu) for step in logged[len(rows):])  # each new row seen, at this CPU

    log = run_dir / "calibration.log"
    run = run_watched(train_command(recipe, data, out, steps, 0, extra), log, env, poll, watch)
    if run["stopped_by"] is not None:
        raise KeyboardInterrupt
    if run["status"] != 0:
        raise _fail("the calibration run", run, log)
    check_config(recipe, out, changes)
    rate = fit_rate(rows)
    rate.update(steps=steps, wall_s=run["wall_s"], cpu_s=run["cpu_s"],
                processes=json.loads((out / "config.json").read_text())["processes"])
    return rate


def _save_json(path: Path, data: dict) -> None:
    from bidsnet_lib.plumbing import atomic_write

    atomic_write(path, json.dumps(data, indent=1) + "\n")


def train_recipe(name: str, recipe: Recipe, budget: float, run_dir: Path, data: Path, env: dict,
                 extra=(), changes=None, calibration_steps: int = 60, poll: float = 0.5) -> dict:
    """Calibrate, then train ``recipe`` for ``budget`` CPU-minutes with 10 milestones; resumes a
    run this function started and was stopped. Returns its state (milestones with CPU and wall)."""
    changes = dict(changes or {})
    state_path = run_dir / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    if state.get("trained") and state.get("budget_cpu_minutes") == budget:
        return state
    out = run_dir / "train"
    calibrated = (state.get("budget_cpu_minutes") == budget and "calibration" in state
                  and state.get("flags") == list(recipe.flags) + list(extra))
    resume = calibrated and (out / "latest.pt").is_file()
    if calibrated and not resume:  # stopped before its first checkpoint: the training starts afresh
        shutil.rmtree(out, ignore_errors=True)
        (run_dir / "train.log").unlink(missing_ok=True)
        state.update(segments=[], milestones={}, started=datetime.datetime.now().isoformat(timespec="seconds"))
    if not calibrated:
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        rate = calibrate(recipe, run_dir, data, calibration_steps, env, extra, changes, poll / 2)
        steps = steps_for_budget(budget, rate)
        state = {"recipe": name, "flags": list(recipe.flags) + list(extra), "budget_cpu_minutes": budget,
                 "calibration": rate, "steps": steps, "keep_every": steps // MILESTONES, "segments": [],
                 "milestones": {}, "trained": False, "started": datetime.datetime.now().isoformat(timespec="seconds")}
        _save_json(state_path, state)
    print(f"{name}: {'resuming' if resume else 'training'} {state['steps']} steps (budget {budget} CPU-min; "
          f"calibrated {state['calibration']['cpu_s_per_step']:.3f} CPU-s/step, start-up "
          f"{state['calibration']['startup_cpu_s']:.1f} CPU-s)", file=sys.stderr, flush=True)
    done_cpu = sum(s["cpu_s"] for s in state["segments"])  # earlier launches of this run
    done_wall = sum(s["wall_s"] for s in state["segments"])
    segment = {"cpu_s": 0.0, "wall_s": 0.0, "resumed": resume, "loads": []}
    state["segments"].append(segment)
    samples: list[tuple[float, float]] = []
    start = time.time()
    last_save = [start]

    def watch(now, cpu):
        samples.append((now, cpu))
        segment.update(cpu_s=cpu, wall_s=now - start)
        new = False
        for path in sorted(out.glob("step_*.pt")):
            step = str(int(path.stem.split("_")[1]))
            if step not in state["milestones"]:
                mtime = path.stat().st_mtime  # the step's checkpoint is written when it is done
                state["milestones"][step] = {"cpu_s": done_cpu + cpu_at(samples, mtime),
                                             "wall_s": done_wall + mtime - start}
                new = True
        if new or now - last_save[0] > 60:  # a hard kill loses at most a minute of accounting
            last_save[0] = now
            _save_json(state_path, state)

    command = train_command(recipe, data, out, state["steps"], state["keep_every"], extra)
    run = run_watched(command + (["--resume"] if resume else []), run_dir / "train.log", env, poll, watch)
    segment.update(cpu_s=run["cpu_s"], wall_s=run["wall_s"], status=run["status"],
                   loads=_load_summary(run["loads"]))
    if run["stopped_by"] is None and run["status"] == 0:
        if len(state["milestones"]) != MILESTONES:
            raise RuntimeError(f"{name}: got {len(state['milestones'])} milestone checkpoints in {out}, "
                               f"expected {MILESTONES}")
        state["trained"] = True
        state["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    _save_json(state_path, state)
    if run["stopped_by"] is not None:
        print(f"{name}: stopped at a step boundary with a checkpoint; run the same command again to continue",
              file=sys.stderr)
        raise KeyboardInterrupt
    if run["status"] != 0:
        raise _fail(f"{name}'s training", run, run_dir / "train.log")
    return state


def _load_summary(loads: list[float]) -> list[float]:
    return [min(loads), statistics.fmean(loads), max(loads)] if loads else []


# ----------------------------------------------------------------------------- scoring
def deltas(result, model: str) -> dict:
    """``model`` minus the best baseline of each group (by mean) on PSNR and SSIM, and the headline."""
    groups = {}
    for c in result.comparisons:
        if c["model"] == model and c["best"] and c["metric"] in ("psnr", "ssim"):
            cell = groups.setdefault(f"{c['set']} {c['group']}", {})
            cell[c["metric"]], cell[f"best_{c['metric']}"] = c["diff"], c["baseline"]
    missing = [g for g in HEADLINE if g not in groups]
    if missing:
        raise ValueError(f"evaluation: got no {', '.join(missing)}, expected the headline groups {HEADLINE}")
    headline = {m: statistics.fmean(groups[g][m] for g in HEADLINE) for m in ("psnr", "ssim")}
    return {"groups": groups, "headline": headline}


def score(models: dict, protocol: dict, cache) -> dict:
    """Each of ``models`` ({label: Inpainter}) against the baselines on the protocol's photos and
    masks, through ``evaluate``; {label: deltas}."""
    from bidsnet_lib.evaluate import evaluate, load_mask_groups, load_photos

    photos = load_photos(ROOT / protocol["images"], protocol["size"], limit=protocol["photo_limit"])
    groups = [g for g in load_mask_groups(ROOT / protocol["masks"], protocol["masks_per_group"]) if g.label in protocol["groups"]]
    result = evaluate(models, photos, groups, baselines=list(BASELINES), lpips=None, fid_features=None,
                      skipped={"lpips": "not needed here", "fid": "not needed here"},
                      progress=sys.stderr.isatty(), cache=cache, n_resamples=protocol["resamples"])
    return {label: deltas(result, label) for label in models}


def score_milestones(state: dict, run_dir: Path, protocol: dict, cache) -> list[dict]:
    from bidsnet_lib.checkpoint import load_inference_model
    from bidsnet_lib.inference import Inpainter

    models = {}
    for step in sorted(map(int, state["milestones"])):
        model, _ = load_inference_model(run_dir / "train" / f"step_{step:07d}.pt", device="cpu")  # EMA weights
        models[f"step {step}"] = Inpainter(model, work_size=protocol["size"], device="cpu", batch_size=16,
                                           label=f"step {step}", mirror=True)
    scores = score(models, protocol, cache)
    return [{"step": step, "cpu_minutes": m["cpu_s"] / 60, "wall_minutes": m["wall_s"] / 60,
             "scores": scores[f"step {step}"]}
            for step, m in sorted(((int(k), v) for k, v in state["milestones"].items()))]


def score_shipped(protocol: dict, cache) -> dict:
    from bidsnet_lib.inference import SHIPPED_CHECKPOINT, Inpainter

    inpainter = Inpainter.from_checkpoint(device="cpu", work_size=protocol["size"], batch_size=16, label="shipped")
    return {"checkpoint": SHIPPED_CHECKPOINT.name, **score({"shipped": inpainter}, protocol, cache)["shipped"]}


def cpu_minutes_to_reach(milestones: list[dict], reference: dict) -> float | None:
    """The CPU-minutes of the first milestone whose headline PSNR and SSIM differences are both at
    least the reference's (None: not reached). Milestones are 1/10 of the budget apart, so this
    is an upper bound by up to that much."""
    for m in milestones:
        head = m["scores"]["headline"]
        if head["psnr"] >= reference["psnr"] and head["ssim"] >= reference["ssim"]:
            return m["cpu_minutes"]
    return None


# ----------------------------------------------------------------------------- tables, plot, docs
def curve_table(results: dict) -> list[str]:
    """The recipes' curves side by side: per milestone CPU-min (wall x cores), dPSNR, dSSIM."""
    recipes = results["recipes"]
    ref = results["reference"]["headline"]
    head = "| milestone |" + "".join(f" {n}: CPU-min (wall x cores) | {n}: ΔPSNR (dB) | {n}: ΔSSIM |" for n in recipes)
    lines = [head, "|---:|" + "---:|---:|---:|" * len(recipes)]
    rows = max((len(r["milestones"]) for r in recipes.values()), default=0)
    for i in range(rows):
        cells = []
        for r in recipes.values():
            if i >= len(r["milestones"]):
                cells.append(" | | |")
                continue
            m = r["milestones"][i]
            cells.append(f" {m['cpu_minutes']:.1f} ({m['wall_minutes'] * r['processes']:.1f}) | "
                         f"{m['scores']['headline']['psnr']:+.3f} | {m['scores']['headline']['ssim']:+.4f} |")
        lines.append(f"| {i + 1} |" + "".join(cells))
    lines.append("| shipped model |" + f" | {ref['psnr']:+.3f} | {ref['ssim']:+.4f} |" * len(recipes))
    reach = []
    for r in recipes.values():
        minutes = cpu_minutes_to_reach(r["milestones"], ref)
        reach.append(" not reached | | |" if minutes is None else f" {minutes:.1f} | | |")
    lines.append("| CPU-min to reach the shipped model |" + "".join(reach))
    return lines


def group_table(results: dict, name: str) -> list[str]:
    """One recipe's last milestone and the shipped model per group: difference to the best baseline."""
    last = results["recipes"][name]["milestones"][-1]["scores"]["groups"]
    ref = results["reference"]["groups"]
    lines = ["| group | best baseline (PSNR / SSIM) | shipped ΔPSNR | shipped ΔSSIM | "
             f"{name}, last milestone ΔPSNR | ΔSSIM |", "|---|---|---:|---:|---:|---:|"]
    for group, cell in ref.items():
        ours = last.get(group, {})
        lines.append(f"| {group} | {cell['best_psnr']} / {cell['best_ssim']} | {cell['psnr']:+.3f} | "
                     f"{cell['ssim']:+.4f} | {ours.get('psnr', math.nan):+.3f} | {ours.get('ssim', math.nan):+.4f} |")
    return lines


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bidsnet_lib.plumbing import atomic_write

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    ref = results["reference"]["headline"]
    for ax, metric, unit in zip(axes, ("psnr", "ssim"), (" (dB)", ""), strict=True):
        for name, r in results["recipes"].items():
            xs = [m["cpu_minutes"] for m in r["milestones"]]
            ax.plot(xs, [m["scores"]["headline"][metric] for m in r["milestones"]], marker="o", label=name)
        ax.axhline(ref[metric], color="k", linestyle="--", linewidth=1, label="shipped model")
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xlabel("CPU-minutes (training processes' CPU time)")
        ax.set_ylabel(f"Δ{metric.upper()}{unit} over the best baseline")
        ax.set_title(f"{metric.upper()}, Set I 30-60 % (val, 256 px)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda stream: fig.savefig(stream, format="png", dpi=100))
    plt.close(fig)


def profile_table(profile: dict) -> list[str]:
    lines = ["| part of a step | CPU ms / step | share | note |", "|---|---:|---:|---|"]
    total = profile["total_ms"]
    for row in profile["rows"]:
        lines.append(f"| {row['part']} | {row['ms']:.1f} | {100 * row['ms'] / total:.1f} % | {row['note']} |")
    lines.append(f"| **sum of the parts** | **{total:.1f}** | 100 % | |")
    lines.append(f"| (`Trainer.train_step` + the loader's batch, timed whole) | {profile['whole_ms']:.1f} | | "
                 "the same steps, timed in between the parts |")
    return lines


def section(results: dict, command: str) -> str:
    from bidsnet_lib.reports import machine_line

    p = results["protocol"]
    out = ["## Time to quality (`bench/time_to_quality.py`)", ""]
    if results.get("recipes"):
        out += [
            "Each recipe trains from scratch on `data/images/train` through `bidsnet train` "
            "(`--processes auto`: one process of one thread a core, splitting each batch). **CPU-minutes are the "
            "training processes' own CPU time** (user + system of the process tree, `os.wait4` at the "
            "end), not wall time x cores: this machine was shared with other jobs, which stretch wall "
            "time (wall x cores is in brackets: it also counts the time the processes waited for a core). Start-up "
            "(imports, the step-0 validation) is counted. The budget was turned into steps by a "
            "calibration run of the same command (not counted). Scores, afterwards: the EMA weights of "
            f"each of {MILESTONES} milestones on {p['photos']} photos of `data/images/val` at "
            f"{p['size']} px through `Inpainter` (working size {p['size']}, mirror average) and "
            f"`bidsnet_lib.evaluate.evaluate`, {p['masks_per_group']} shipped masks per group; Δ = "
            "the model minus the group's best of Telea, NS and biharmonic (by mean); the table gives "
            "the mean Δ over the Set I 30-40, 40-50, 50-60 % bins. The shipped model, scored the same "
            "way, is the reference; reached = both Δ at least its.",
            "",
            f"![time to quality]({p['plot']})",
            "",
            *curve_table(results),
            "",
        ]
        for name, r in results["recipes"].items():
            cal = r["calibration"]
            loads = [x for s in r["segments"] for x in s.get("loads", [])[1:2]]
            out.append(
                f"- **{name}** (`{r['command']}`): {r['about']}. `bidsnet train {' '.join(r['flags'])}`; budget "
                f"{r['budget_cpu_minutes']:g} CPU-min -> {r['steps']:,} steps at {r['processes']} processes "
                f"(calibration: {cal['cpu_s_per_step']:.3f} CPU-s a step, start-up {cal['startup_cpu_s']:.0f} CPU-s); "
                f"used {r['cpu_minutes_total']:.1f} CPU-min in {r['wall_minutes_total']:.1f} min of wall time, "
                f"mean load average {statistics.fmean(loads) if loads else math.nan:.1f}; trained "
                f"{r['started']} to {r['finished']} in {len(r['segments'])} launch(es) of the command"
                + (" (a resumed run counts each launch's start-up and the steps redone)" if len(r['segments']) > 1 else "")
                + ".")
        out += ["", "Per group, the last milestone of each recipe against the shipped model (Δ to the best baseline):", ""]
        for name in results["recipes"]:
            out += [*group_table(results, name), ""]
    prof = results.get("profile")
    if prof:
        out += [
            f"### Where a step's time goes: \"{prof['recipe']}\" at {prof['size']} px, before", "",
            f"`python bench/time_to_quality.py --profile` on {prof['date']}: one process, one thread, batch "
            f"{prof['batch']}, median CPU time (`time.process_time`, robust to load) over {prof['steps']} steps after "
            f"{prof['warmup']} of warm-up; the amortised rows divide one event by its interval in the recipe. "
            "`bidsnet train` runs this step as 2 processes of batch 2 that all-reduce the gradients: the "
            f"calibration of the run above measured {prof.get('ddp_cpu_s_per_step', math.nan):.3f} CPU-s a step there "
            f"(both processes together), against {prof['whole_ms'] / 1000:.3f} here.",
            "",
            *profile_table(prof), "",
            *[f"- {line}" for line in prof["findings"]], "",
        ]
    out.append(f"Machine: {machine_line()}.")
    return "\n".join(out)


# ----------------------------------------------------------------------------- profile
def profile_step(recipe: Recipe, data: Path, val: Path, steps: int = 20, warmup: int = 3,
                 checkpoint_every: int | None = None, changes=None) -> dict:
    """Median CPU milliseconds a step of ``recipe`` (with ``changes``) spends in each part, in this
    process; a checkpoint is amortised over ``checkpoint_every`` steps (default: the recipe's)."""
    import numpy as np
    import torch
    from PIL import Image

    from bidsnet_lib.metrics import ssim
    from bidsnet_lib.model import composite, opencv_fill
    from bidsnet_lib.train import Trainer, ema_decay, update_ema

    torch.set_num_threads(1)
    clock = time.process_time
    config = dataclasses.replace(recipe.config(), data=(str(data),), val_data=(str(val),), processes=1,
                                 steps=10**6, num_workers=0, **(changes or {}))
    checkpoint_every = checkpoint_every or config.checkpoint_every
    scratch = tempfile.TemporaryDirectory(prefix="ttq_profile.")
    trainer = Trainer(config, scratch.name, device="cpu", progress=False)
    dataset, batches = trainer.train_set, iter(trainer.loader())
    for _ in range(warmup):
        trainer.train_step(next(batches))
        trainer.step += 1
    parts: dict[str, list[float]] = {}

    def timed(name, fn, *args):
        start = clock()
        out = fn(*args)
        parts.setdefault(name, []).append(1000 * (clock() - start))
        return out

    l1_only = type(trainer.loss_fn)(dataclasses.replace(config.loss, ssim=0.0))  # the same class, hole/valid L1 alone
    photos = {}
    for k in range(steps):
        # The trainer's own step and batch, whole: the reference the parts must add up to.
        start = clock()
        trainer.train_step(next(batches))
        trainer.step += 1
        parts.setdefault("whole", []).append(1000 * (clock() - start))
        # The same work in parts. Data, per sample, as the dataset does it (its own methods):
        batch = timed("loader", next, batches)
        for i in range(config.batch_size):
            index = (k * config.batch_size + i) % len(dataset)
            rng = np.random.default_rng([config.seed, 10**6 + k, i])
            timed("decode+crop", dataset._image, index, rng, config.size)
            timed("mask", dataset._draw_mask, rng, config.size)
            # What a cache of decoded photos would leave: the crop and resize alone.
            path = dataset.paths[index]
            if path not in photos:
                with Image.open(path) as image:
                    photos[path] = image.convert("RGB")
            photo = photos[path]
            side = min(photo.size) * rng.uniform(0.5, 1.0)
            box = (0.0, 0.0, side, side)
            timed("crop from memory", photo.resize, (config.size, config.size), Image.Resampling.BICUBIC, box)
        image, mask = batch["image"], batch["mask"]
        pred = timed("forward", trainer.g_train, image, mask)
        timed("telea", opencv_fill, image, mask)
        comp = composite(pred, image, mask)
        g_loss, _ = timed("loss forward", trainer.loss_fn, pred, comp, image, mask, None)
        trainer.opt_g.zero_grad(set_to_none=True)
        timed("backward", g_loss.backward)
        timed("clip", torch.nn.utils.clip_grad_norm_, trainer.generator.parameters(), config.grad_clip)
        timed("adam", trainer.opt_g.step)
        timed("ema", update_ema, trainer.ema, trainer.generator, ema_decay(trainer.step, config.ema_decay))
        trainer.step += 1
        # Each loss term alone, forward and backward, on a leaf copy of the prediction.
        for name, term in (("l1", lambda p, c, t, m: l1_only(p, c, t, m, None)[0]),
                           ("ssim", lambda p, c, t, m: config.loss.ssim * (1 - ssim(c, t).mean()))):
            leaf = pred.detach().requires_grad_(True)
            value = timed(f"{name} forward", term, leaf, composite(leaf, image, mask), image, mask)
            timed(f"{name} backward", value.backward)
    for _ in range(2):  # the faster of two: the first call also warms its caches
        timed("validate", trainer.validate)
        if config.sample_every:
            timed("samples", trainer.write_samples)
    log_row = getattr(trainer, "_log_row", None)  # one metrics row: the logs' means, all-reduced, a JSON line
    logs = trainer.train_step(next(batches))
    for _ in range(5 if log_row is not None else 0):
        timed("log row", log_row, dict(logs), 1, 1.0)
    for _ in range(2):
        timed("checkpoint", trainer.save_checkpoint)
    scratch.cleanup()
    med = {name: statistics.median(values) for name, values in parts.items()}
    for name in ("validate", "samples", "checkpoint"):
        med[name] = min(parts.get(name, [0.0]))
    net_backward = med["backward"] - med["l1 backward"] - med["ssim backward"]
    network = med["forward"] - med["telea"] + net_backward
    every = {"validate": config.validate_every, "samples": config.sample_every, "log": config.log_every}
    rows = [
        ("photo decoding and cropping (x batch)", config.batch_size * med["decode+crop"],
         f"JPEG decoded at reduced scale (draft), cropped, resized; {med['crop from memory'] * config.batch_size:.1f} ms "
         "of it is the crop and resize alone, on a photo decoded once and kept"),
        ("mask drawing (x batch)", config.batch_size * med["mask"], "Set I / Set II masks drawn afresh per sample"),
        ("loader rest (to tensor, collate)",
         max(0.0, med["loader"] - config.batch_size * (med["decode+crop"] + med["mask"])), "loader batch minus the two above"),
        ("Telea pre-fill (x batch)", med["telea"], "`model.opencv_fill` in `InpaintingNet.forward`, per sample, serial"),
        ("network forward", med["forward"] - med["telea"], "forward minus the Telea fill"),
        ("loss: hole + valid L1, forward", med["l1 forward"], ""),
        ("loss: hole + valid L1, backward", med["l1 backward"], ""),
        ("loss: SSIM x2, forward", med["ssim forward"], "Gaussian 11x11 windows, 5 convolutions"),
        ("loss: SSIM x2, backward", med["ssim backward"], ""),
        ("network backward", net_backward, "the loss's backward minus the terms' own"),
        ("gradient clipping", med["clip"], "one norm over all parameters"),
        ("Adam step", med["adam"], ""),
        ("EMA update", med["ema"], ""),
        (f"validation / {every['validate']}", med["validate"] / every["validate"] if every["validate"] else 0.0,
         f"{config.val_size} items through the EMA model: {med['validate']:.0f} ms each time"),
        (f"sample grid / {every['samples']}", med["samples"] / every["samples"] if every["samples"] else 0.0,
         f"{med['samples']:.0f} ms each time"),
        (f"metrics row / {every['log']}", med.get("log row", math.nan) / every["log"], ""),
        (f"checkpoints / {checkpoint_every}", 2 * med["checkpoint"] / checkpoint_every,
         f"{med['checkpoint']:.0f} ms a file; at each milestone (a tenth of the run) latest.pt and step_N.pt"),
    ]
    step = med["loader"] + med["whole"]
    per_step = sum(ms for part, ms, _ in rows if " / " not in part)
    rows.insert(13, ("rest of `train_step` (composite, zero_grad, logs, checks)", max(0.0, step - per_step),
                     "the whole step minus the parts above"))
    total = sum(ms for _, ms, _ in rows)
    data_ms = sum(ms for part, ms, _ in rows[:3])
    findings = [
        f"Data: {data_ms:.0f} ms a step ({100 * data_ms / total:.0f} %); photo decoding could go: a photo decoded "
        f"once and kept leaves {config.batch_size * med['crop from memory']:.0f} of the "
        f"{config.batch_size * med['decode+crop']:.0f} ms ({len(dataset.paths)} photos decoded: "
        f"{_decoded_mb(dataset.paths):.0f} MB a process).",
        f"Masks drawn ahead (a bank drawn once, or a worker): {config.batch_size * med['mask']:.0f} ms a step.",
        f"The Telea pre-fill costs {med['telea']:.0f} ms a step ({100 * med['telea'] / total:.0f} %) in the main "
        "process, inside the model's forward; it depends only on the crop and its mask, so it could be computed "
        "with them in the data pipeline (a worker), not removed.",
        f"The network's forward and backward are {network:.0f} ms ({100 * network / total:.0f} %): what "
        "remains is the real work, which only fewer or cheaper samples (a smaller size, a schedule that "
        "needs fewer steps, another width) can cut.",
    ]
    return {"recipe": "today", "size": config.size, "batch": config.batch_size, "steps": steps, "warmup": warmup,
            "rows": [{"part": p, "ms": ms, "note": n} for p, ms, n in rows], "total_ms": total, "whole_ms": step,
            "findings": findings, "date": str(datetime.date.today())}


def _decoded_mb(paths) -> float:
    """The memory the photos take decoded, as RGB bytes (headers read only)."""
    from PIL import Image

    total = 0
    for path in paths:
        with Image.open(path) as image:
            total += image.size[0] * image.size[1] * 3
    return total / 2**20


# ----------------------------------------------------------------------------- main
def _protocol(quick: bool, out: Path) -> dict:
    from bidsnet_lib.masks import SHIPPED_MASKS

    size, limit = (64, 2) if quick else (256, None)
    photos = len(sorted(p for p in VAL.iterdir() if p.is_file() and p.suffix.lower() in (".jpg", ".png")))
    # Paths relative to the checkout, so that results.json matches the protocol in any clone.
    return {"images": str(VAL.relative_to(ROOT)), "size": size, "photo_limit": limit, "photos": min(photos, limit or photos),
            "masks": str(SHIPPED_MASKS.resolve().relative_to(ROOT)), "masks_per_group": 1 if quick else 2, "baselines": list(BASELINES),
            "resamples": 100 if quick else 1000,  # only the means are used: intervals need few
            "plot": "time_to_quality/curve.png" if not quick else "curve.png", "headline": list(HEADLINE),
            # The headline groups only: at 256 px with the mirror average a model costs ~1.5 CPU-s a
            # pair, so the 8 groups would cost each recipe more CPU to score than to train.
            "groups": list(HEADLINE)}


def _quick_data(scratch: Path) -> Path:
    folder = scratch / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(TRAIN.glob("*.jpg"))[:4]:
        target = folder / path.name
        if not target.exists():
            shutil.copyfile(path, target)
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=None,
                        help="recipes to measure (default: all not measured yet)")
    parser.add_argument("--budget", type=float, default=60.0, help="CPU-minutes of training per recipe (default 60)")
    parser.add_argument("--retrain", action="store_true", help="train and score the recipes again even if measured")
    parser.add_argument("--processes", default="auto", help="bidsnet train --processes (default auto: one a core)")
    parser.add_argument("--out", type=Path, default=None, help=f"results folder (default {RESULTS})")
    parser.add_argument("--runs", type=Path, default=None, help=f"run folders (default {RUNS}; --quick: under --out)")
    parser.add_argument("--profile", action="store_true", help="profile one step of 'today' at 128 px and stop")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 32 px, 4 photos, 1 process, 0.25 CPU-minutes; scored on 2 val photos "
                             "at 64 px, 1 mask of each headline group")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # the other core belongs to the other jobs (and to training when it runs)
    out = args.out or RESULTS
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {"format": "bidsnet-time-to-quality"}
    protocol = _protocol(args.quick, out)
    if results.get("protocol", protocol) != protocol:  # kept runs are scored again, not retrained
        print(f"{results_path}: scored under another protocol; the scores are computed again", file=sys.stderr)
        results = {"format": results["format"], **({"profile": results["profile"]} if "profile" in results else {})}
    results["protocol"] = protocol
    command = "python bench/time_to_quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.profile:
        run = results.get("recipes", {}).get("today", {})
        every = run["steps"] // MILESTONES if run else None  # the bench's own checkpoint interval
        results["profile"] = profile_step(RECIPES["today"], TRAIN, VAL, steps=3 if args.quick else 20,
                                          warmup=1 if args.quick else 3, checkpoint_every=every,
                                          changes=QUICK_CHANGES if args.quick else None)
        if run:
            results["profile"]["ddp_cpu_s_per_step"] = run["calibration"]["cpu_s_per_step"]
        print("\n".join(profile_table(results["profile"])))
        _save_json(results_path, results)
        if not args.quick:
            _write_docs(results, command)
        return 0
    from bidsnet_lib.evaluate import default_cache_dir

    runs = args.runs or (out / "runs" if args.quick else RUNS)
    cache = out / "baseline_cache" if args.quick else default_cache_dir()
    env = dict(os.environ)
    extra, changes, budget, data = [], {}, args.budget, TRAIN
    if args.processes != "auto":
        extra += ["--processes", str(args.processes)]
    if args.quick:
        env["OMP_NUM_THREADS"] = "1"
        extra = ["--processes", "1", *[x for k, v in QUICK_CHANGES.items() for x in (f"--{k.replace('_', '-')}", str(v))]]
        changes, budget, data = dict(QUICK_CHANGES), 0.25, _quick_data(out / "scratch")
    recipes = results.setdefault("recipes", {})
    for name in args.recipes or list(RECIPES):
        if name in recipes and not args.retrain:
            print(f"{name}: measured already ({recipes[name]['budget_cpu_minutes']:g} CPU-min); --retrain to "
                  "measure again", file=sys.stderr)
            continue
        if args.retrain:
            shutil.rmtree(runs / name, ignore_errors=True)
        recipe = RECIPES[name]
        try:
            state = train_recipe(name, recipe, budget, runs / name, data, env, extra, changes,
                                 calibration_steps=8 if args.quick else 60, poll=0.2 if args.quick else 0.5)
        except KeyboardInterrupt:
            return 130
        _score_reference(results, results_path, protocol, cache)  # after training: it starts sooner
        print(f"{name}: scoring {MILESTONES} milestones ...", file=sys.stderr, flush=True)
        start = time.process_time()
        milestones = score_milestones(state, runs / name, protocol, cache)
        print(f"  {time.process_time() - start:.0f} CPU-s", file=sys.stderr, flush=True)
        segments = state["segments"]
        recipes[name] = {
            "about": recipe.about, "flags": state["flags"], "budget_cpu_minutes": budget,
            "processes": state["calibration"]["processes"], "steps": state["steps"],
            "calibration": {k: v for k, v in state["calibration"].items() if k != "points"},
            "milestones": milestones, "cpu_minutes_total": sum(s["cpu_s"] for s in segments) / 60,
            "wall_minutes_total": sum(s["wall_s"] for s in segments) / 60, "segments": segments,
            "started": state["started"], "finished": state["finished"], "command": command,
        }
        _save_json(results_path, results)  # each recipe as it finishes
    if not recipes:
        return 0
    _score_reference(results, results_path, protocol, cache)
    lines = curve_table(results)
    print("\n".join(lines))
    plot(results, out / "curve.png")
    _write_docs(results, command, out / "benchmarks.md" if args.quick else None)
    return 0


def _score_reference(results: dict, path: Path, protocol: dict, cache) -> None:
    if "reference" not in results:
        print("scoring the shipped model ...", file=sys.stderr, flush=True)
        start = time.process_time()
        results["reference"] = score_shipped(protocol, cache)
        print(f"  {time.process_time() - start:.0f} CPU-s", file=sys.stderr, flush=True)
        _save_json(path, results)


def _write_docs(results: dict, command: str, path: Path | None = None) -> None:
    from bidsnet_lib.reports import write_section

    write_section(path or ROOT / "docs" / "benchmarks.md", "bench/time_to_quality.py", section(results, command))


if __name__ == "__main__":
    sys.exit(main())
