"""The training loop's helpers: the EMA of the generator's weights (with its warm-up), every RNG
state of a process (saved in checkpoints for an exact resume), a digest of weights, sample grids,
the validation picks and the metrics log of a run.

Taught in ``notebooks/06_training.ipynb``; used by :class:`bidsnet_lib.train.Trainer`.
"""

import hashlib
import json
import os
import random
import warnings
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import make_grid

from bidsnet_lib.attention import FastAttention
from bidsnet_lib.model import composite


def ema_decay(step: int, decay: float) -> float:
    """The EMA decay at ``step``: ``min(decay, (1 + step) / (10 + step))``.

    The warm-up lets the average follow the fast early changes (0.1 at step 0, 0.5 at step 8)
    instead of staying near the random initial weights for ~1/(1 - decay) steps.
    """
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·model for parameters; buffers (attention features) copied."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p.detach(), 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)


def rng_state(device: torch.device) -> dict:
    """This process's RNG states as tensors and plain data (loadable with weights_only=True)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (str(name), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def weights_digest(*modules: torch.nn.Module) -> str:
    """SHA-256 of the exact bits of the modules' state dicts: equal digests, equal weights."""
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def sample_grid(model: torch.nn.Module, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(3, H', W') grid in [0, 1]; one row per image: input (hole white), mask, output, target."""
    comp = composite(model(image, mask).float(), image, mask)  # (B, 3, H, W)
    shown = image * (1 - mask) + mask  # the hole painted white, as the model's input lacks it
    tiles = torch.stack([shown, mask.expand_as(image), comp, image], dim=1)  # (B, 4, 3, H, W)
    return make_grid(tiles.flatten(0, 1).cpu(), nrow=4, padding=2, pad_value=1.0)


def spread_items(length: int, n_images: int, count: int) -> list[int]:
    """``count`` indices of a fixed validation set (item k = photo k % n_images with mask
    k % n_masks): photo j % n_images for the j-th pick, masks spread evenly over the set."""
    picks = []
    for j in range(min(count, length)):
        target = round(j * length / min(count, length))  # evenly spread positions: mask variety
        k = target - target % n_images + j % n_images  # the nearby index showing photo j % n
        picks.append(k - n_images if k >= length else k)
    return picks


def read_metrics(run_dir: str | os.PathLike, skip_damaged: bool = False) -> list[dict]:
    """The rows of ``run_dir/metrics.jsonl`` (training rows have "g_total", validation "val_psnr");
    a last line torn by a crash mid-append is left out, a damaged line before it is an error
    (``skip_damaged``: left out too, with a warning naming it)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"run_dir: {path} does not exist (no run has logged there)")
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            if number == len(lines):
                break
            problem = f"{path}: line {number} is not a JSON row with a step ({line[:60]!r})"
            if not skip_damaged:
                raise ValueError(f"{problem}; expected one JSON object a line")
            warnings.warn(f"{problem}: left out", stacklevel=2)
            continue
        rows.append(row)
    return rows


def redraw_counters(model: torch.nn.Module) -> dict[str, int]:
    """Calls since each FastAttention last drew its features: not in the state_dict, so saved apart."""
    return {name: m.calls_since_redraw for name, m in model.named_modules() if isinstance(m, FastAttention)}
