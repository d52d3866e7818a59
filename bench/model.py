"""What BIDS-Net costs on the CPU: time, FLOPs, activation memory, exact against linear attention.

    python bench/model.py            # 64-512 px; writes its section of docs/benchmarks.md and a plot
    python bench/model.py --quick    # smoke test: small preset, 32 and 64 px, one repeat, no file

Models, batch 1, fp32: the ``paper`` and ``small`` presets (FAVOR+ attention), each beside the same
network with exact attention in the Transformer stream (``attention="softmax"``, PyTorch's fused
``scaled_dot_product_attention``), and, for the cost side of the paper's stream ablation, a
CNN-only and a Transformer-only network with the small preset's depths, widths scaled until the
parameter count matches the small preset's (``bidsnet_lib.model.single_stream``: one stream
with BIDS-Net's own input and head code). Per model and size:

- time of an inference forward (``no_grad``) and of a training step (forward, ``mean()``,
  backward): medians of repeated calls after a warm-up, the models of one size taking turns
  round by round so that a load change on this shared machine hits them alike;
- FLOPs counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and
  convolutions only, its convention; PyTorch's CPU attention kernel is taught to it here), and
  the GFLOP/s achieved against this machine's peak: the fastest of several large fp32 matrix
  products, measured at the start and at the end of the run with the same thread count;
- activation memory: the bytes of the distinct storages autograd saves for the backward pass
  during the training forward (``saved_tensors_hooks``; parameters and buffers left out).

Last, the batch that fits a 16 GB T4 when training the paper preset at 256 px: the library's
own ``bidsnet_lib.train.Trainer`` (the preset's config, a random VGG-19, one random photo) runs
one ``train_step`` (generator, critic step with R1, generator loss with VGG-19 and the critic)
while ``SavedTensors`` follows the bytes autograd holds for backward, each graph let go as its
backward frees it; the peak is the figure. In fp32 and under the trainer's bfloat16 autocast
(this CPU's stand-in for CUDA's float16 autocast: the same 2-byte activations), at batch 1 and
2, so that the per-image part and the batch-independent part separate.
"""

import argparse
import collections
import contextlib
import dataclasses
import datetime
import itertools
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
import weakref
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bidsnet_lib.attention import TransformerStream
from bidsnet_lib.model import BIDSNet, BIDSNetConfig, single_stream
from bidsnet_lib.reports import machine_line, write_section
from bidsnet_lib.train import PRESETS, TrainConfig, Trainer
from bidsnet_lib.vgg import RandomWeightsWarning

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "bench/model.py"
GIB = 2**30
# A T4 reports 15,360 MiB; the CUDA context with cuBLAS/cuDNN workspaces takes about 0.6 GiB.
T4_USABLE = 15.0 * GIB - 0.6 * GIB
# Bytes per parameter that live through training: fp32 weights, gradients and Adam's two moments
# (16), plus the generator's EMA copy (4); VGG-19 is frozen (weights only).
BYTES_PER_PARAM = {"generator": 20, "critic": 16, "vgg": 4}
# Backward needs the gradients of the activations while it frees the saved tensors, and the
# caching allocator fragments: headroom on top of the saved bytes (an assumption, not measured).
BACKWARD_HEADROOM = 1.25
# Sizes whose timed runs took less than this many seconds are timed a second time at the end.
RETIME_BELOW = 30.0


# ----------------------------------------------------------------------------- the models


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_models(presets: list[str]) -> dict[str, nn.Module]:
    """Name -> model: each preset with FAVOR+ and with exact attention; the single streams."""
    models = {}
    for preset in presets:
        config = getattr(BIDSNetConfig, preset)()
        torch.manual_seed(0)
        models[preset] = BIDSNet(config)
        models[f"{preset}, softmax"] = BIDSNet(dataclasses.replace(config, attention="softmax"))
    if "small" in presets:
        target = num_parameters(models["small"])
        models["CNN-only"] = single_stream("cnn", BIDSNetConfig.small(), target)
        models["Transformer-only"] = single_stream("transformer", BIDSNetConfig.small(), target)
    return models


def make_inputs(size: int, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A random image and a centred square hole over a quarter of it (the cost ignores content)."""
    image = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(size))
    mask = torch.zeros(batch, 1, size, size)
    mask[..., size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1
    return image, mask


def tokens_at_first_scale(model: nn.Module, size: int) -> int:
    """Tokens one attention call of the Transformer's first scale sees (0 without one)."""
    stream = model.trans if isinstance(model, BIDSNet) else model.stream
    return (size // stream.patch) ** 2 if isinstance(stream, TransformerStream) else 0


# ----------------------------------------------------------------------------- measurements


class _Held:
    """A tensor autograd keeps for backward; the meter hears of it when autograd lets it go."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor


class SavedTensors:
    """Inside ``with``: the distinct storages autograd saves for backward, minus excluded modules'
    parameters and buffers. ``storages`` maps a storage's address to its size in bytes (every
    storage saved inside, held or since let go); ``peak`` is the most bytes of them held at once,
    as the graphs saved inside are freed by their backward passes."""

    def __init__(self, *excluded: nn.Module):
        self.excluded = {t.untyped_storage().data_ptr() for m in excluded
                         for t in itertools.chain(m.parameters(), m.buffers())}
        self.storages: dict[int, int] = {}
        self._held: collections.Counter[int] = collections.Counter()  # address -> tensors held
        self.held_bytes = self.peak = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda held: held.tensor)

    def _pack(self, t: torch.Tensor) -> _Held:
        held = _Held(t)
        storage = t.untyped_storage()  # views of one storage (q, k, v of one qkv) count once
        address = storage.data_ptr()
        if address not in self.excluded:
            self.storages[address] = storage.nbytes()
            if not self._held[address]:
                self.held_bytes += storage.nbytes()
                self.peak = max(self.peak, self.held_bytes)
            self._held[address] += 1
            weakref.finalize(held, self._release, address)
        return held

    def _release(self, address: int) -> None:
        self._held[address] -= 1
        if not self._held[address]:  # the storage's last saved tensor is gone
            self.held_bytes -= self.storages[address]

    @property
    def nbytes(self) -> int:
        return sum(self.storages.values())

    def __enter__(self) -> "SavedTensors":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


def _sdpa_cpu_flops(q, k, v, *args, out_shape=None, **kwargs) -> int:
    """softmax(q k^T) v: two products of (N_q x d) by (d x N_k) size each."""
    b, h, n_q, d = q
    return 2 * b * h * n_q * k[-2] * (d + v[-1])


def _sdpa_cpu_backward_flops(grad_out, q, k, v, *args, out_shape=None, **kwargs) -> int:
    """The fused backward recomputes q k^T, then forms dP, dV, dQ and dK: five such products."""
    b, h, n_q, d = q
    return 2 * b * h * n_q * k[-2] * (3 * d + 2 * v[-1])


# FlopCounterMode knows the CUDA attention kernels only; on the CPU the fused kernel is this one.
SDPA_CPU_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward_flops,
}


def flop_counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping=SDPA_CPU_FLOPS)


def forward(model: nn.Module, image: torch.Tensor, mask: torch.Tensor) -> None:
    model.eval()
    with torch.no_grad():
        model(image, mask)


def train_step(model: nn.Module, image: torch.Tensor, mask: torch.Tensor,
               meter: SavedTensors | None = None) -> None:
    model.train()
    model.zero_grad(set_to_none=True)  # no accumulation into last step's gradients
    with meter or contextlib.nullcontext():
        loss = model(image, mask).mean()
    loss.backward()


def peak_gflops(n: int, repeats: int) -> float:
    """This machine's fp32 matrix-product rate: the fastest of ``repeats`` (n x n) @ (n x n)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    torch.mm(a, b)  # warm-up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def repeats_for(seconds: float, repeats: int) -> int:
    """Fewer timed runs for slow cases: the budget of the whole run is about ten minutes."""
    if seconds < 2:
        return repeats
    return max(1, min(repeats, 3)) if seconds < 10 else 1


def predict_step(results: dict, name: str, size: int) -> float | None:
    """The training step's time at ``size`` extrapolated from the half size (None if unknown).

    Everything scales with the pixels (x4 per doubling) except exact attention's excess over the
    same model with FAVOR+, which scales with tokens squared (x16).
    """
    prev = results.get((name, size // 2), {})
    if "train_s" not in prev:
        return None
    if not name.endswith("softmax"):
        return prev["train_s"] * 4
    linear = results.get((name.removesuffix(", softmax"), size // 2), {}).get("train_s")
    if linear is None:
        return prev["train_s"] * 16
    return linear * 4 + max(prev["train_s"] - linear, 0.0) * 16


def skip_reason(model: nn.Module, name: str, size: int, results: dict, args) -> str | None:
    """Why this case is not run (too slow or too big for this machine), or None."""
    if results.get((name, size // 2), {}).get("skip"):
        return f"skipped at {size // 2} px already"
    predicted = predict_step(results, name, size)
    activations = results.get((name, size // 2), {}).get("act_bytes", 0) * 4
    if activations > args.memory_budget * GIB:
        return (f"its activations are predicted at {activations / GIB:.1f} GiB "
                f"(--memory-budget {args.memory_budget:g} GiB)")
    if predicted is None or predicted <= args.max_seconds:
        return None
    reason = f"a training step is predicted at {predicted:,.0f} s (--max-seconds {args.max_seconds:g})"
    n = tokens_at_first_scale(model, size)
    if name.endswith("softmax") and n:
        heads = model.config.heads
        scores = heads * n * n * 4
        reason = (f"{n:,} tokens at the Transformer's first scale: its {heads} N x N score matrices "
                  f"would take {scores / GIB:,.0f} GiB in fp32 per attention call; PyTorch's fused kernel never "
                  f"builds them, but " + reason)
    return reason


def time_group(calls: dict, repeats: dict, image: torch.Tensor, mask: torch.Tensor) -> dict:
    """Median forward and training-step time per model; the models take turns, round by round."""
    times = {name: {"fwd_s": [], "train_s": []} for name in calls}
    for r in range(max(repeats.values(), default=0)):
        for name, model in calls.items():
            if r >= repeats[name]:
                continue
            for key, fn in (("fwd_s", forward), ("train_s", train_step)):
                start = time.perf_counter()
                fn(model, image, mask)
                times[name][key].append(time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
    return {name: {key: statistics.median(t) for key, t in ts.items()} | {"runs": len(ts["train_s"])}
            for name, ts in times.items()}


def measure_size(models: dict, size: int, results: dict, args) -> dict:
    """Fill ``results[(name, size)]``: counted warm-ups first, then the timed runs in turns.

    Returns the timed group (models, repeats, seconds its timing took) for a second pass.
    """
    image, mask = make_inputs(size)
    calls, repeats = {}, {}
    for name, model in models.items():
        entry = results.setdefault((name, size), {"params": num_parameters(model)})
        entry["skip"] = skip_reason(model, name, size, results, args)
        if entry["skip"]:
            continue
        counter = flop_counter()
        with counter:
            forward(model, image, mask)
        entry["fwd_flops"] = counter.get_total_flops()
        counter, meter = flop_counter(), SavedTensors(model)
        start = time.perf_counter()
        with counter:
            train_step(model, image, mask, meter)
        first = time.perf_counter() - start
        entry.update(train_flops=counter.get_total_flops(), act_bytes=meter.nbytes)
        model.zero_grad(set_to_none=True)
        repeats[name] = repeats_for(first, args.repeats)
        calls[name] = model
    start = time.perf_counter()
    for name, timed in time_group(calls, repeats, image, mask).items():
        results[(name, size)].update(timed, load=os.getloadavg()[0])
    group = {"calls": calls, "repeats": repeats, "seconds": time.perf_counter() - start}
    print(f"{size} px (load {os.getloadavg()[0]:.1f}): " + ", ".join(
        f"{name} {results[(name, size)]['train_s']:.2f} s" for name in calls), flush=True)
    return group


def retime(group: dict, size: int, results: dict) -> bool:
    """Time a size's group again; keep this pass if its training steps took less in total.

    Load from other jobs only ever slows a run down, so the quicker pass is the less disturbed;
    a whole pass is kept or dropped, so ratios within a size always come from one pass.
    """
    calls = group["calls"]
    timed = time_group(calls, group["repeats"], *make_inputs(size))
    better = sum(t["train_s"] for t in timed.values()) < sum(results[(n, size)]["train_s"] for n in calls)
    if better:
        for name, t in timed.items():
            results[(name, size)].update(t, load=os.getloadavg()[0], second_pass=True)
    print(f"{size} px again (load {os.getloadavg()[0]:.1f}): " + ", ".join(
        f"{name} {t['train_s']:.2f} s" for name, t in timed.items())
        + (" (kept)" if better else " (first pass kept)"), flush=True)
    return better


def memory_trainer(config: TrainConfig, folder: Path) -> Trainer:
    """A CPU ``Trainer`` for ``config`` in ``folder`` (one random photo, one validation item).

    Its VGG-19, if the losses use one, has random weights: the memory measure needs its
    architecture only, and this machine cannot download the ImageNet file.
    """
    photos = folder / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    pixels = torch.randint(0, 256, (config.size, config.size, 3), generator=torch.Generator().manual_seed(0))
    Image.fromarray(pixels.to(torch.uint8).numpy()).save(photos / "0.png")
    config = dataclasses.replace(config, data=(str(photos),), val_data=(), val_size=1, num_workers=0,
                                 loss=dataclasses.replace(config.loss, vgg_weights="random"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return Trainer(config, folder / "run", device="cpu", progress=False)


def training_memory(trainer: Trainer, batch: int) -> int:
    """Peak bytes autograd holds for backward during one ``trainer.train_step`` of ``batch`` images.

    The trainer's own step, measured by :class:`SavedTensors`: the generator's graph, held through
    the critic step (its R1 penalty's double backward included) and the generator loss, each
    phase's graph let go by its backward. Weights and buffers of the trainer's modules are left
    out (``t4_estimate`` counts them as states); autocast's low-precision weight copies count.
    """
    image, mask = make_inputs(trainer.config.size, batch)
    modules = [m for m in (trainer.generator, trainer.ema, trainer.discriminator, trainer.loss_fn) if m is not None]
    with SavedTensors(*modules) as meter:
        trainer.train_step({"image": image, "mask": mask})
    return meter.peak


def t4_estimate(preset: str, size: int) -> dict:
    """Per-image and fixed training memory (fp32, autocast) and the batch each leaves on a T4.

    The ``preset``'s training config with every step at ``size`` px (no smaller stages), its
    ``Trainer`` measured at batch 1 and 2 (``training_memory``); "autocast" is the trainer's
    bfloat16 autocast on the CPU (``cpu_bf16``).
    """
    config = dataclasses.replace(PRESETS[preset](), size=size, stages=())
    out = {"preset": preset, "size": size, "batch_size": config.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        for label, autocast in (("fp32", False), ("autocast", True)):
            trainer = memory_trainer(dataclasses.replace(config, cpu_bf16=autocast), Path(tmp) / label)
            one, two = (training_memory(trainer, b) for b in (1, 2))
            vgg = trainer.loss_fn.vgg
            params = {"generator": num_parameters(trainer.generator),
                      "critic": 0 if trainer.discriminator is None else num_parameters(trainer.discriminator),
                      "vgg": 0 if vgg is None else num_parameters(vgg)}
            states = sum(BYTES_PER_PARAM[k] * n for k, n in params.items())
            per_image, fixed = two - one, 2 * one - two
            batch = math.floor((T4_USABLE - states - fixed) / (per_image * BACKWARD_HEADROOM))
            out.update(params=params, states=states)
            out[label] = {"per_image": per_image, "fixed": fixed, "batch": batch}
    return out


# ----------------------------------------------------------------------------- the report


def fmt_time(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.3g}"


def cost_table(results: dict, names: list[str], sizes: list[int], peak: float) -> list[str]:
    lines = ["| model | px | parameters | forward (ms) | train step (ms) | runs | load | GFLOP fwd / step | "
             "GFLOP/s fwd / step | % of peak (step) | activations (MB) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in names:
        for size in sizes:
            r = results[(name, size)]
            if r.get("skip"):
                lines.append(f"| {name} | {size} | {r['params']:,} | skipped: {r['skip']} | | | | | | | |")
                continue
            fwd_rate, step_rate = r["fwd_flops"] / r["fwd_s"] / 1e9, r["train_flops"] / r["train_s"] / 1e9
            lines.append(
                f"| {name} | {size} | {r['params']:,} | {fmt_time(r['fwd_s'])} | "
                f"{fmt_time(r['train_s'])} | {r['runs']}{' (end)' if r.get('second_pass') else ''} | "
                f"{r['load']:.1f} | {r['fwd_flops'] / 1e9:.3g} / {r['train_flops'] / 1e9:.3g} | "
                f"{fwd_rate:.1f} / {step_rate:.1f} | {100 * step_rate / peak:.0f} | "
                f"{r['act_bytes'] / 2**20:,.0f} |")
    return lines


def attention_table(results: dict, models: dict, presets: list[str], sizes: list[int]) -> list[str]:
    lines = ["| preset | px | tokens (first scale) | FAVOR+ step (ms) | softmax step (ms) | "
             "softmax / FAVOR+ step | softmax / FAVOR+ forward | softmax / FAVOR+ FLOPs |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for preset in presets:
        for size in sizes:
            fast, exact = results[(preset, size)], results[(f"{preset}, softmax", size)]
            n = tokens_at_first_scale(models[preset], size)
            if exact.get("skip") or fast.get("skip"):
                lines.append(f"| {preset} | {size} | {n:,} | "
                             f"{fmt_time(fast['train_s']) if 'train_s' in fast else 'skipped'} | "
                             f"skipped (see above) | | | |")
                continue
            lines.append(
                f"| {preset} | {size} | {n:,} | {fmt_time(fast['train_s'])} | {fmt_time(exact['train_s'])} | "
                f"{exact['train_s'] / fast['train_s']:.2f}x | {exact['fwd_s'] / fast['fwd_s']:.2f}x | "
                f"{exact['train_flops'] / fast['train_flops']:.2f}x |")
    return lines


def pays_off(results: dict, preset: str, sizes: list[int]) -> str:
    """The smallest size from which FAVOR+'s training step stays faster than exact attention's."""
    measured = [s for s in sizes if "train_s" in results[(f"{preset}, softmax", s)]
                and "train_s" in results[(preset, s)]]
    first = None
    for size in reversed(measured):
        if results[(f"{preset}, softmax", size)]["train_s"] <= results[(preset, size)]["train_s"]:
            break
        first = size
    if first is None:
        return f"at none of the measured sizes (up to {measured[-1]} px)" if measured else "(not measured)"
    return f"from {first} px on (measured up to {measured[-1]} px)"


def t4_lines(est: dict) -> list[str]:
    p = est["params"]
    rows = []
    for label in ("fp32", "autocast"):
        e = est[label]
        rows.append(f"| {label} | {e['per_image'] / GIB:.2f} | {e['fixed'] / GIB:.2f} | {e['batch']} |")
    parts = [name for name, n in (("VGG-19 up to relu5_2", p["vgg"]), ("the critic", p["critic"])) if n]
    loss = "through " + (" and ".join(parts) or "the pixels only") + (
        "" if p["vgg"] else " (no VGG-19: the preset's perceptual and style weights are 0)")
    return [
        f"Training the {est['preset']} preset at {est['size']} px: the most bytes autograd holds for "
        f"backward during one `Trainer.train_step` (the library's own step: generator; critic step "
        f"with R1; generator loss {loss}; each graph let go by its backward), measured at batch 1 "
        f"and 2. \"autocast\" is the trainer's bfloat16 autocast on this CPU (`cpu_bf16`), standing "
        f"in for float16 autocast on the T4 (both keep 2-byte activations; the two op lists differ "
        f"in detail).", "",
        "| precision | per image (GiB) | independent of batch (GiB) | batch that fits a T4 |",
        "| --- | ---: | ---: | ---: |", *rows, "",
        f"Assumptions: {T4_USABLE / GIB:.1f} GiB usable (15 GiB the T4 reports, less ~0.6 GiB for the "
        f"CUDA context and cuBLAS/cuDNN workspaces); states that live through training: generator "
        f"{p['generator']:,} parameters x {BYTES_PER_PARAM['generator']} B (fp32 weights, gradients, "
        f"Adam's two moments, the EMA copy), critic {p['critic']:,} x {BYTES_PER_PARAM['critic']} B, "
        f"VGG-19 {p['vgg']:,} x {BYTES_PER_PARAM['vgg']} B, {est['states'] / GIB:.2f} GiB together; "
        f"activations x {BACKWARD_HEADROOM} for the gradient buffers of the backward pass and the "
        f"allocator's fragmentation. batch = floor((usable - states - batch-independent) / "
        f"({BACKWARD_HEADROOM} x per image)). `TrainConfig.{est['preset']}()` uses batch "
        f"{est['batch_size']}."]


def plot(results: dict, names: list[str], sizes: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    panels = (("train_s", 1e3, "training step (ms)"), ("train_flops", 1e-9, "GFLOP per training step"),
              ("act_bytes", 2**-20, "activations per image (MB)"))
    for ax, (key, scale, unit) in zip(axes, panels, strict=True):
        for name, marker in zip(names, "os^vDx", strict=False):
            done = [s for s in sizes if key in results[(name, s)]]
            ax.plot(done, [results[(name, s)][key] * scale for s in done],
                    marker + ("--" if "softmax" in name else "-"), label=name)
        ax.set(xscale="log", yscale="log", xlabel="image side (px)", ylabel=unit)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_xticks([], minor=True)  # log axes label minor ticks too, over the sizes' labels
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("BIDS-Net cost, batch 1, fp32 CPU (dashed: exact softmax attention)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(results, models, presets, sizes, peaks, peak_n, t4, header) -> str:
    names = [n for n in models if n not in ("CNN-only", "Transformer-only")]
    peak = max(peaks)
    singles = [n for n in ("small", "CNN-only", "Transformer-only") if n in models]
    lines = ["## Model cost: BIDS-Net presets, exact attention, single streams (`bench/model.py`)", "",
             *header, "",
             f"Peak: the fastest of several {peak_n} x {peak_n} fp32 matrix products: {peaks[0]:.1f} GFLOP/s "
             f"at the start, {peaks[1]:.1f} at the end; \"% of peak\" is against {peak:.1f}. FLOPs "
             f"count matrix products and convolutions only (FlopCounterMode's convention; norms, "
             f"activations, FAVOR+'s exp are left out), a multiply-add as 2. Activations are the "
             f"bytes autograd saves for the backward pass of one image in fp32. Times are medians "
             f"of the runs counted, after a warm-up, fewer for slow cases; \"load\" is the 1-minute "
             f"load average when that size's timing ended. Sizes whose timing took under "
             f"{RETIME_BELOW:.0f} s were timed again at the end of the run and the pass whose training "
             f"steps took less in total was kept (\"(end)\": the second; load only ever slows a run, "
             f"and a size's ratios always come from one pass).", "",
             "### Presets, with FAVOR+ and with exact attention", "",
             *cost_table(results, names, sizes, peak), "",
             "### Where linear attention starts to pay off", "",
             "Same network, FAVOR+ (m = 72) against exact softmax attention (PyTorch's fused CPU "
             "kernel, which never builds the N x N matrix: activations stay alike, time does not).", "",
             *attention_table(results, models, presets, sizes), ""]
    lines += [f"- {preset}: FAVOR+'s training step is faster {pays_off(results, preset, sizes)}."
              for preset in presets]
    if len(singles) == 3:
        lines += ["", "### Cost side of the stream ablation (about equal parameters)", "",
                  "CNN-only and Transformer-only: one stream of the small preset's depths with the "
                  "same input, refinement block and head, its widths scaled (base x channel_mults) to "
                  "the small preset's parameter count.", "",
                  *cost_table(results, singles, sizes, peak)]
    if t4:
        lines += ["", "### What batch fits a 16 GB T4", "", *t4_lines(t4)]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small preset, tiny sizes, one repeat, no file")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per fast case (default: 5)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared, loaded machine 2 measure the scheduler)")
    parser.add_argument("--max-seconds", type=float, default=60.0,
                        help="skip a case whose training step is predicted slower (default: 60)")
    parser.add_argument("--memory-budget", type=float, default=8.0,
                        help="skip a case whose activations are predicted above this, GiB (default: 8)")
    parser.add_argument("--output", type=Path, default=None,
                        help="Markdown file (default: docs/benchmarks.md; none with --quick)")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    for name in ("repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    output = args.output or (None if args.quick else ROOT / "docs" / "benchmarks.md")
    presets = ["small"] if args.quick else ["paper", "small"]
    sizes = [32, 64] if args.quick else [64, 128, 256, 512]
    args.repeats = 1 if args.quick else args.repeats
    peak_n = 512 if args.quick else 2048

    threads_before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        started, load_start = datetime.datetime.now(datetime.timezone.utc), os.getloadavg()[0]
        print(f"{machine_line()}, load average {load_start:.1f}", flush=True)
        peaks = [peak_gflops(peak_n, 1 if args.quick else 5)]
        models = build_models(presets)
        results, groups = {}, {}
        for size in sizes:
            groups[size] = measure_size(models, size, results, args)
        # Cheap sizes are timed once more at the end: a burst of load from other jobs at the start
        # (this machine is shared) would otherwise decide them.
        for size, group in groups.items():
            if group["seconds"] < RETIME_BELOW:
                retime(group, size, results)
        t4 = t4_estimate("small", 64) if args.quick else t4_estimate("paper", 256)
        peaks.append(peak_gflops(peak_n, 1 if args.quick else 5))
        minutes = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds() / 60
        command = " ".join(["python bench/model.py", *argv])
        header = [f"`{command}` on {started:%Y-%m-%d}, {minutes:.0f} min ({machine_line()}; load "
                  f"average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end: the "
                  f"machine was shared with other jobs, so times are noisy and ratios measured side "
                  f"by side in one run are the figures to trust). Batch 1, fp32."]
        if args.threads < (os.cpu_count() or 1):
            header += ["", "One thread: with the cores busy with other jobs, a second thread mostly "
                       "waits to be scheduled (see the attention section)."]
        text = report(results, models, presets, sizes, peaks, peak_n, t4, header)
        print("\n" + text)
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
            figure = output.parent / "model_cost.png"
            plot(results, list(models), sizes, figure)
            text = text.replace("### Presets,", f"![time, FLOPs and activations against the image side]"
                                                f"({figure.name})\n\n### Presets,", 1)
            write_section(output, SCRIPT, text)
            print(f"wrote {output} and {figure}")
    finally:
        torch.set_num_threads(threads_before)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
