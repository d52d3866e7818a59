"""Evaluate inpainting the way papers report it, with intervals a reader can trust: PSNR, SSIM,
LPIPS, FID and a hole colour error per mask group, next to OpenCV's Telea and Navier–Stokes,
biharmonic inpainting and PatchMatch; behind the ``bidsnet evaluate`` command.

Taught in ``notebooks/07_evaluation.ipynb``. The protocol, stated in every table it writes:

- **Groups.** The shipped root ``bidsnet_lib/eval_masks`` gives one group per Mask Set I hole-ratio bin
  (``set1/10-20`` ...) and one per Mask Set II preset (``set2/thin`` ...); any other folder of
  masks is split into the Set I bins by each mask's hole ratio (``MaskFolder.by_bin``).
- **Pairing.** Every mask of a group is paired with every photo. No pairing is random; the seed
  only picks the example shown per group, seeds torch for any stochastic model, and seeds the
  bootstrap.
- **Intervals over photos.** Each photo's scores are averaged over the group's masks; a cell gives
  the mean over photos and its 95 % percentile bootstrap interval, photos resampled
  (:mod:`bidsnet_lib.bootstrap`). Each model is compared with each baseline photo by photo: the
  mean paired difference with its own interval, and the share of photos it wins.
- **Resolution.** ``size=N``: each photo is centre-cropped to a square and resized to N×N, the
  papers' protocol (256×256); ``size=None`` (``--size native``): each photo at its own size,
  every mask stretched to it (nearest neighbour). ``bidsnet evaluate`` runs the model through
  ``bidsnet_lib.inference.Inpainter``, the crop-around-the-holes path of ``bidsnet inpaint``
  (at the checkpoint's working size), and the baselines on the whole image, as users run them.
- **Composited, 8-bit.** Every method's output keeps the known pixels of the input bit for bit and
  is rounded to 8 bits, as a saved PNG would be; metrics compare it with the original photo.
- **Hole colour error** (:func:`bidsnet_lib.metrics.hole_colour_error`) needs no ground truth:
  each filled hole's mean colour against its ring of known pixels, so colour casts show; the
  original photos' own score is given beside it.
- **FID** is computed per group from that group's n images (real: the photos of its pairs;
  generated: the outputs); with tens of images it is biased and only comparable at equal n, so
  the count is in every row and a warning is issued. It has no interval.
- **Seconds per image**: each method's wall time on this machine; a baseline read from the
  output cache (:class:`bidsnet_lib.baselines.CachedBaseline`) reports the time it took when
  it was computed.

Command line (``bidsnet_lib.commands.evaluate``)::

    bidsnet evaluate --checkpoint CKPT --images data/images/test --masks bidsnet_lib/eval_masks --out results/
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from bidsnet_lib.baselines import (
    BASELINES,
    Baseline,
    CachedBaseline,
    make_baseline,
    patchmatch_available,
)
from bidsnet_lib.bootstrap import CONFIDENCE, N_RESAMPLES, bootstrap_interval, paired_difference
from bidsnet_lib.masks import (
    EVAL_PRESETS,
    LARGE_MASK_PRESETS,
    MIN_SIZE,
    RATIO_BINS,
    SHIPPED_MASKS,  # noqa: F401  (the default masks beside SHIPPED_IMAGES, for notebooks 07 and 09)
    MaskFolder,
    bin_name,
    hole_ratio,
    overlay_mask,
    square_photo,
    write_eval_set,
)
from bidsnet_lib.metrics import (
    COLOUR_RING,
    FID_MIN_IMAGES,
    FIDMetric,
    FIDSampleSizeWarning,
    hole_colour_error,
    psnr,
    ssim,
)
from bidsnet_lib.model import check_inputs, composite
from bidsnet_lib.plumbing import (
    IMAGE_EXTENSIONS,
    REPO_ROOT,
    atomic_write,
    image_files,
)

ROOT = REPO_ROOT
SHIPPED_IMAGES = ROOT / "data" / "images" / "test"
STANDIN_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")  # scikit-image's, for installs without data/

# metric key -> table header; the arrow says which way is better.
METRICS = {"psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓", "fid": "FID ↓",
           "colour": "Hole colour error ↓"}
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "fid": False, "colour": False}
PER_PHOTO = ("psnr", "ssim", "lpips", "colour")  # per-image metrics: intervals over photos
COMPARED = ("psnr", "ssim", "lpips")  # what a model must win on against each baseline
CSV_COLUMNS = ("set", "group", "hole_ratio", "method", "metric", "value", "ci_low", "ci_high", "std",
               "n", "n_photos", "note")
PER_PHOTO_COLUMNS = ("set", "group", "photo", "method", "metric", "value", "n_masks")
COMPARISON_COLUMNS = ("set", "group", "model", "baseline", "metric", "diff", "ci_low", "ci_high", "wins",
                      "beats", "best", "n_photos")
REFERENCE = "original photo"  # the hole colour error of the photo itself, beside the methods'
SET_NAMES = {"set1": "Set I", "set2": "Set II"}
_BIN_PATTERN = re.compile(r"^\d+-\d+$")


# ----------------------------------------------------------------------------- inputs
@dataclass
class MaskGroup:
    """The masks of one table row block: a Set I bin, a Set II preset or a bin of a folder."""

    set_name: str  # "Set I", "Set II" or "folder"
    name: str  # "10-20", "thick", ...
    masks: list[np.ndarray]  # each (H, W) uint8 0/1
    sources: list[str] = field(default_factory=list)  # file of each mask, when read from disk

    def __post_init__(self):
        if not isinstance(self.masks, list) or not self.masks:
            got = "an empty list" if isinstance(self.masks, list) else type(self.masks).__name__
            raise ValueError(f"masks of group {self.name!r}: got {got}; expected a non-empty list "
                             "of (H, W) 0/1 arrays")
        for i, m in enumerate(self.masks):
            if not isinstance(m, np.ndarray) or m.ndim != 2:
                raise ValueError(f"masks[{i}] of group {self.name!r}: got "
                                 f"{getattr(m, 'shape', type(m).__name__)}; expected an (H, W) array")
            hole_ratio(m)  # raises unless the values are 0/1

    @property
    def label(self) -> str:
        return f"{self.set_name} {self.name}"


def _read_group(folder: Path, set_name: str, limit: int | None) -> MaskGroup:
    masks = MaskFolder(folder)
    count = len(masks) if limit is None else min(limit, len(masks))
    return MaskGroup(set_name, folder.name, [masks.load(i) for i in range(count)],
                     [str(p) for p in masks.paths[:count]])


def _subfolders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _bin_order(folder: Path) -> tuple[int, str]:
    names = [bin_name(b) for b in RATIO_BINS]
    return (names.index(folder.name) if folder.name in names else len(names), folder.name)


def _preset_order(folder: Path) -> tuple[int, str]:
    order = [*EVAL_PRESETS, *LARGE_MASK_PRESETS]
    return (order.index(folder.name) if folder.name in order else len(order), folder.name)


def write_standin_data(folder, per_group: int | None = None) -> tuple[Path, Path]:
    """Stand-ins for the repository's data/ where a bare pip install (Colab) has none:
    scikit-image's photos ``STANDIN_PHOTOS`` as PNGs in ``folder/photos``, and in
    ``folder/masks`` the fixed evaluation masks, the first ``per_group`` of each group (all when
    None), byte for byte the shipped ones (:func:`bidsnet_lib.masks.write_eval_set`).
    Returns (photo folder, mask folder)."""
    from PIL import Image
    from skimage import data as skdata

    if per_group is not None and (isinstance(per_group, bool) or not isinstance(per_group, int) or per_group < 1):
        raise ValueError(f"per_group: got {per_group!r}; expected None (every mask) or an int >= 1")
    photos, masks = Path(folder) / "photos", Path(folder) / "masks"
    photos.mkdir(parents=True, exist_ok=True)
    for name in STANDIN_PHOTOS:
        Image.fromarray(getattr(skdata, name)()).save(photos / f"{name}.png")
    write_eval_set(masks, per_bin=per_group or 10, per_preset=per_group or 20)
    return photos, masks

def load_mask_groups(source, limit: int | None = None) -> list[MaskGroup]:
    """The mask groups of a folder: the shipped layout (``set1/<bin>``, ``set2/<preset>``), one
    set's folder (``bidsnet_lib/eval_masks/set1``), or any folder of masks, split into hole-ratio bins.

    ``limit`` keeps the first masks (sorted by path) of each group.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit: got {limit!r}; expected None or an int >= 1")
    root = Path(source)
    if not root.is_dir():
        raise ValueError(f"masks: no such folder {str(root)!r}; expected the shipped root bidsnet_lib/eval_masks, "
                         "one of its sets, or a folder of mask images")
    sets = [(root / key, name) for key, name in SET_NAMES.items() if (root / key).is_dir()]
    if not sets and root.name in SET_NAMES:
        sets = [(root, SET_NAMES[root.name])]
    if not sets:  # a set's folder under another name: its subfolders are bins or presets
        subs = _subfolders(root)
        if subs and all(_BIN_PATTERN.match(p.name) for p in subs):
            sets = [(root, "Set I")]
        elif subs and all(p.name in LARGE_MASK_PRESETS for p in subs):
            sets = [(root, "Set II")]
    groups = []
    for folder, set_name in sets:
        order = _bin_order if set_name == "Set I" else _preset_order
        groups += [_read_group(sub, set_name, limit) for sub in sorted(_subfolders(folder), key=order)]
    if sets:
        if not groups:
            raise ValueError(f"masks: {str(root)!r} has set folders but no group subfolders in them")
        return groups
    # Any folder of masks (searched recursively): grouped by each mask's hole ratio.
    folder = MaskFolder(root)
    groups = []
    for ratio_bin, indices in folder.by_bin().items():
        kept = indices if limit is None else indices[:limit]
        if kept:
            groups.append(MaskGroup("folder", bin_name(ratio_bin), [folder.load(i) for i in kept],
                                    [str(folder.paths[i]) for i in kept]))
    if not groups:
        ratios = folder.ratios()
        raise ValueError(f"masks: none of the {len(folder)} masks in {str(root)!r} has a hole ratio in "
                         f"the bins {[bin_name(b) for b in RATIO_BINS]} (%); theirs span "
                         f"{min(ratios):.1%}..{max(ratios):.1%}")
    return groups


def load_photos(folder, size: int | None = None, limit: int | None = None) -> dict[str, np.ndarray]:
    """Photos of a folder by file stem (sorted), RGB uint8: (size, size, 3) centre crops when
    ``size`` is an int, their own (H, W, 3) when it is None."""
    from bidsnet_lib.inference import load_image

    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < MIN_SIZE):
        raise ValueError(f"size: got {size!r}; expected None (own size) or an int >= {MIN_SIZE}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit: got {limit!r}; expected None or an int >= 1")
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"images: no such folder {str(folder)!r}")
    paths = image_files(folder)
    if not paths:
        raise ValueError(f"images: folder {str(folder)!r} holds no {'/'.join(IMAGE_EXTENSIONS)} files")
    photos = {}
    for path in paths[:limit]:
        rgb = load_image(path, f"images: {path.name}")  # (H, W, 3)
        if min(rgb.shape[:2]) < MIN_SIZE:
            raise ValueError(f"images: {path.name} is {rgb.shape[0]}x{rgb.shape[1]}; expected both sides "
                             f">= {MIN_SIZE}")
        photos[path.stem] = rgb if size is None else square_photo(rgb, size)
    return photos


def fit_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A 0/1 mask resized to (H, W) with nearest neighbour, which keeps it binary."""
    if mask.shape == tuple(shape):
        return mask
    return cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


# ----------------------------------------------------------------------------- methods
class ModelMethod:
    """A network ``model(image, mask) -> (B, 3, H, W)`` as a method: eval mode, no gradients,
    composited (known pixels kept). Runs on the model's device; returns on the input's."""

    def __init__(self, model: torch.nn.Module, name: str = "BIDS-Net"):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model: got {type(model).__name__}; expected a torch.nn.Module")
        self.model, self.name = model, name

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        first = next(self.model.parameters(), None)
        device = image.device if first is None else first.device
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                pred = self.model(image.to(device), mask.to(device))  # (B, 3, H, W)
        finally:
            self.model.train(was_training)
        return composite(pred.float().clamp(0, 1).to(image.device), image, mask)


class InpainterMethod:
    """An ``Inpainter`` (any image size: crops around the holes) as a method on tensors."""

    def __init__(self, inpainter, name: str | None = None):
        self.inpainter, self.name = inpainter, name or inpainter.label

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        check_inputs(image, mask)
        rgb = (image * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3)
        holes = mask[:, 0].to(torch.uint8).cpu().numpy()  # (B, H, W)
        filled = self.inpainter.inpaint_many(list(rgb), list(holes))
        out = torch.from_numpy(np.stack(filled)).permute(0, 3, 1, 2).to(image.device, image.dtype) / 255
        return composite(out, image, mask)


def as_method(model, name: str | None = None) -> Callable:
    """A callable ``(image (B, 3, H, W), mask (B, 1, H, W)) -> composited (B, 3, H, W)``."""
    from bidsnet_lib.inference import Inpainter

    if isinstance(model, Inpainter):
        return InpainterMethod(model, name)
    if isinstance(model, torch.nn.Module):
        return ModelMethod(model, name or "BIDS-Net")
    if callable(model):
        return model
    raise TypeError(f"model: got {type(model).__name__}; expected a BIDSNet (nn.Module), an Inpainter, "
                    "a callable (image, mask) -> image, or a dict of them by name")


def default_cache_dir() -> Path:
    """Where ``bidsnet evaluate`` keeps baseline outputs: ``$XDG_CACHE_HOME/bidsnet/baselines``
    (``~/.cache/bidsnet/baselines`` when unset)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bidsnet" / "baselines"


def default_baselines() -> tuple[str, ...]:
    """Every baseline of :data:`bidsnet_lib.baselines.BASELINES`, PatchMatch only when its package
    is installed (a warning says when it is left out)."""
    if patchmatch_available():
        return tuple(BASELINES)
    warnings.warn("PatchMatch left out of the baselines: the pypatchmatch package is not installed "
                  "(pip install pypatchmatch)", UserWarning, stacklevel=3)
    return tuple(b for b in BASELINES if b != "patchmatch")


def _methods(model, label: str, baselines: Sequence, radius: int, cache) -> tuple[dict[str, Callable], list[str]]:
    """Every method by name, baselines first, and the names of the baselines."""
    methods = {}
    for item in baselines:
        if isinstance(item, str):
            baseline = make_baseline(item, radius if item in ("telea", "ns") else None)
        elif callable(item) and isinstance(getattr(item, "name", None), str):
            baseline = item
        else:
            raise TypeError(f"baselines: got {item!r:.60}; expected names from {list(BASELINES)} or "
                            "baselines (callables with a name, see make_baseline)")
        if cache is not None and isinstance(baseline, Baseline) and baseline.cache_outputs:
            baseline = CachedBaseline(baseline, cache)
        methods[baseline.name] = baseline
    names = list(methods)
    if isinstance(model, Mapping):
        models = dict(model)
    else:
        models = {} if model is None else {label: model}
    for name, m in models.items():
        if name in methods or name == REFERENCE:
            raise ValueError(f"model name {name!r} is also a baseline's or the reference's; expected "
                             "distinct names")
        methods[name] = as_method(m, name)
    if not methods:
        raise ValueError("nothing to evaluate: model is None and baselines is empty")
    return methods, names


# ----------------------------------------------------------------------------- results
@dataclass
class Example:
    """One pair of a group and what every method made of it, all RGB uint8 (H, W, 3)."""

    group: str
    photo: str
    mask_source: str
    target: np.ndarray
    mask: np.ndarray  # (H, W) 0/1
    outputs: dict[str, np.ndarray]


@dataclass
class EvalResult:
    """The long-format rows (``CSV_COLUMNS``) with what a table must state beside them: each
    photo's means (``PER_PHOTO_COLUMNS``), each model against each baseline
    (``COMPARISON_COLUMNS``), each method's seconds per image and the bootstrap's settings."""

    rows: list[dict]
    methods: list[str]
    metric_notes: dict[str, str]  # metric -> what was used, or "skipped: why"
    protocol: str
    examples: list[Example]
    baselines: list[str] = field(default_factory=list)  # the methods that are baselines
    per_photo: list[dict] = field(default_factory=list)
    comparisons: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # method -> seconds per image
    bootstrap: dict = field(default_factory=dict)  # seed, n_resamples

    @property
    def models(self) -> list[str]:
        return [m for m in self.methods if m not in self.baselines]

    def _row(self, group: str, method: str, metric: str) -> dict:
        for row in self.rows:
            if group in (row["group"], f"{row['set']} {row['group']}") and row["method"] == method \
                    and row["metric"] == metric:
                return row
        raise KeyError(f"no row for group={group!r}, method={method!r}, metric={metric!r}")

    def value(self, group: str, method: str, metric: str) -> float:
        """The value of one cell; ``group`` is a group's name ("10-20") or label ("Set I 10-20")."""
        return self._row(group, method, metric)["value"]

    def interval(self, group: str, method: str, metric: str) -> tuple[float, float]:
        """The bootstrap interval over photos of one cell (NaN for FID and skipped metrics)."""
        row = self._row(group, method, metric)
        return row["ci_low"], row["ci_high"]

    def comparison(self, group: str, model: str, baseline: str, metric: str) -> dict:
        """``model`` minus ``baseline`` in one group: diff, ci_low, ci_high, wins, beats, best."""
        for c in self.comparisons:
            if group in (c["group"], f"{c['set']} {c['group']}") and (c["model"], c["baseline"],
                                                                       c["metric"]) == (model, baseline, metric):
                return c
        raise KeyError(f"no comparison for group={group!r}, model={model!r}, baseline={baseline!r}, "
                       f"metric={metric!r}")

    def target_groups(self, model: str, metrics: Sequence[str] = ("psnr", "ssim")) -> list[str]:
        """The groups (labels) in which ``model`` beats every baseline on every one of ``metrics``
        with the whole paired interval on the better side of zero."""
        won = []
        for set_name, group, _, _ in self.groups:
            cells = [c for c in self.comparisons if (c["set"], c["group"], c["model"]) == (set_name, group, model)
                     and c["metric"] in metrics]
            if cells and len(cells) == len(metrics) * len(self.baselines) and all(c["beats"] for c in cells):
                won.append(f"{set_name} {group}")
        return won

    @property
    def groups(self) -> list[tuple[str, str, float, int]]:
        """(set, group, mean hole ratio, n) in table order."""
        seen = {}
        for row in self.rows:
            seen.setdefault((row["set"], row["group"]), (row["hole_ratio"], row["n"]))
        return [(s, g, r, n) for (s, g), (r, n) in seen.items()]

    @property
    def computed_metrics(self) -> list[str]:
        return [m for m in METRICS if not self.metric_notes[m].startswith("skipped")]

    def _write_table(self, path, columns: Sequence[str], rows: list[dict]) -> Path:
        def cell(v):
            if isinstance(v, float):
                return "" if math.isnan(v) else repr(v)
            return v

        def write(stream):
            writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: cell(row[k]) for k in columns})

        return _write_atomic(path, write)

    def write_csv(self, path) -> Path:
        """``results.csv``: one row per (group, method, metric); skipped metrics have no value."""
        return self._write_table(path, CSV_COLUMNS, self.rows)

    def write_per_photo_csv(self, path) -> Path:
        """``per_photo.csv``: each photo's mean over a group's masks, per method and metric."""
        return self._write_table(path, PER_PHOTO_COLUMNS, self.per_photo)

    def to_json(self) -> dict:
        """Everything of the result but the pictures, as plain JSON data (NaN as null, ±inf as
        the strings "inf" / "-inf")."""
        def plain(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [plain(x) for x in v]
            return v

        return plain({"format": "bidsnet-evaluation", "protocol": self.protocol,
                      "metric_notes": self.metric_notes,
                      "bootstrap": {"method": "percentile", "over": "photos", "confidence": CONFIDENCE,
                                    **self.bootstrap},
                      "methods": self.methods, "baselines": self.baselines,
                      "seconds_per_image": self.seconds, "rows": self.rows,
                      "comparisons": self.comparisons, "per_photo": self.per_photo})

    def write_json(self, path) -> Path:
        """``results.json``: :meth:`to_json`."""
        return _write_atomic(path, lambda f: f.write(json.dumps(self.to_json(), indent=1) + "\n"))

    def markdown(self) -> str:
        """The scores table (a row per group and method, a column per metric, mean [interval]),
        then each model against each baseline, with notes saying how."""
        fmt = {"psnr": "{:.2f}", "ssim": "{:.4f}", "lpips": "{:.4f}", "fid": "{:.4g}", "colour": "{:.1f}"}
        lines = [
            f"Metrics on the composited output (known pixels kept from the input, holes filled by "
            f"the method, rounded to 8 bits), against the original photo. {self.protocol}",
            "",
            "| Set | Group | Hole % | Photos × masks | Method | " + " | ".join(METRICS.values())
            + " | s / image |",
            "|---|---|---:|---:|---|" + "---:|" * (len(METRICS) + 1),
        ]
        cells = {(r["set"], r["group"], r["method"], r["metric"]): r for r in self.rows}
        for set_name, group, ratio, n in self.groups:
            for method in self.methods:
                values = []
                for metric in METRICS:
                    row = cells[(set_name, group, method, metric)]
                    v, low, high = row["value"], row["ci_low"], row["ci_high"]
                    if math.isnan(v):
                        values.append("skipped")
                        continue
                    text = fmt[metric].format(v)
                    if not math.isnan(low):
                        text += f" [{fmt[metric].format(low)}, {fmt[metric].format(high)}]"
                    values.append(text)
                row = cells[(set_name, group, method, "psnr")]
                seconds = self.seconds.get(method, math.nan)
                lines.append(f"| {set_name} | {group} | {100 * ratio:.1f} | {row['n_photos']} × "
                             f"{n // row['n_photos']} | {method} | " + " | ".join(values)
                             + f" | {'—' if math.isnan(seconds) else f'{seconds:.3f}'} |")
        lines.append("")
        for metric, note in self.metric_notes.items():
            header = METRICS[metric].rsplit(" ", 1)[0]
            if metric == "colour" and not note.startswith("skipped"):
                own = [cells[(s, g, REFERENCE, "colour")]["value"] for s, g, _, _ in self.groups]
                note += (f"; the original photos themselves score {min(own):.1f}–{max(own):.1f} over "
                         "the groups (their hidden content differs from the ring too)")
            lines.append(f"- {header}: {note}")
        lines.append("- s / image: wall time per image of each method on this machine (batched for the "
                     "model); baselines read from the cache report the time measured when computed")
        for model in self.models:
            lines += ["", *self._comparison_lines(model)]
        return "\n".join(lines)

    def _comparison_lines(self, model: str) -> list[str]:
        compared = [m for m in COMPARED if any(c["metric"] == m and c["model"] == model for c in self.comparisons)]
        if not compared or not self.baselines:
            return []
        n_photos = self.rows[0]["n_photos"]
        fmt = {"psnr": "{:+.2f}", "ssim": "{:+.4f}", "lpips": "{:+.4f}"}
        lines = [f"**{model} minus each baseline**, photo by photo: the mean difference and its "
                 f"{100 * CONFIDENCE:g} % bootstrap interval over photos; ✓ when the whole interval lies on "
                 "the better side of zero; wins: the photos on which the model is better, of "
                 f"{n_photos}; † marks the group's best baseline on that metric (best mean).",
                 "",
                 "| Set | Group | Baseline | " + " | ".join(f"Δ{METRICS[m]} | wins" for m in compared) + " |",
                 "|---|---|---|" + "---:|---:|" * len(compared)]
        for set_name, group, _, _ in self.groups:
            for baseline in self.baselines:
                values = []
                for metric in compared:
                    c = self.comparison(f"{set_name} {group}", model, baseline, metric)
                    f = fmt[metric]
                    text = f.format(c["diff"])
                    if not math.isnan(c["ci_low"]):
                        text += f" [{f.format(c['ci_low'])}, {f.format(c['ci_high'])}]"
                    text += (" ✓" if c["beats"] else "") + (" †" if c["best"] else "")
                    values += [text, f"{round(c['wins'] * c['n_photos'])}/{c['n_photos']}"]
                lines.append(f"| {set_name} | {group} | {baseline} | " + " | ".join(values) + " |")
        won = self.target_groups(model)
        total = len(self.groups)
        lines += ["", f"Beats every baseline on PSNR and SSIM with both intervals above zero in {len(won)} "
                      f"of {total} groups" + (f": {', '.join(won)}." if won else ".")]
        return lines

    def figure(self):
        """Each computed metric against the group's mean hole ratio: a line per method through the
        Set I (or folder) bins, an open marker per Set II preset in the method's colour."""
        from matplotlib.figure import Figure  # no pyplot: headless, no global state
        from matplotlib.lines import Line2D

        metrics = self.computed_metrics
        fig = Figure(figsize=(4.2 * len(metrics), 3.6), layout="constrained")
        axes = fig.subplots(1, len(metrics), squeeze=False)[0]
        colours = {m: f"C{i}" for i, m in enumerate(self.methods)}
        presets = [g for s, g, _, _ in self.groups if s == "Set II"]
        shapes = {g: "svD^<>ph"[i % 8] for i, g in enumerate(presets)}
        for ax, metric in zip(axes, metrics, strict=True):
            for method in self.methods:
                points = [(r["set"], r["group"], r["hole_ratio"], r["value"]) for r in self.rows
                          if r["method"] == method and r["metric"] == metric]
                binned = sorted((x, y) for s, _, x, y in points if s != "Set II")
                if binned:
                    ax.plot(*zip(*binned, strict=True), "o-", color=colours[method])
                for s, group, x, y in points:
                    if s == "Set II":
                        ax.plot(x, y, shapes[group], mfc="none", color=colours[method])
            ax.set_xlabel("hole ratio (mean of the group)")
            ax.set_title(METRICS[metric])
            ax.xaxis.set_major_formatter(lambda x, _: f"{x:.0%}")
            ax.grid(alpha=0.3)
        handles = [Line2D([], [], color=colours[m], marker="o", label=m) for m in self.methods]
        handles += [Line2D([], [], color="0.4", marker=shapes[g], mfc="none", ls="none",
                           label=f"Set II {g}") for g in presets]
        axes[-1].legend(handles=handles, fontsize=7)
        return fig

    def examples_figure(self):
        """A row per group: input (holes white), mask, each method, target."""
        from matplotlib.figure import Figure

        columns = ["input", "mask", *self.methods, "target"]
        rows = len(self.examples)
        width, height = 1.9 * len(columns) + 0.25, 1.95 * rows + 0.35
        # Fixed margins, not a layout engine: a grid of equal tiles needs none, and the constrained
        # layout of (groups x methods) axes took longer than the evaluation of a quick run.
        fig = Figure(figsize=(width, height))
        axes = fig.subplots(rows, len(columns), squeeze=False, gridspec_kw={
            "left": 0.25 / width, "right": 1 - 0.05 / width, "bottom": 0.05 / height,
            "top": 1 - 0.3 / height, "wspace": 0.05, "hspace": 0.05})
        for r, (row, ex) in enumerate(zip(axes, self.examples, strict=True)):
            tiles = [overlay_mask(ex.target, ex.mask), ex.mask * np.uint8(255),
                     *(ex.outputs[m] for m in self.methods), ex.target]
            for ax, tile, title in zip(row, tiles, columns, strict=True):
                ax.imshow(tile, cmap="gray" if tile.ndim == 2 else None, vmin=0, vmax=255)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:  # column titles once, on top
                    ax.set_title(title, fontsize=8)
            row[0].set_ylabel(ex.group, fontsize=8)
        return fig


def _write_atomic(path, write: Callable) -> Path:
    """``write(text_stream)`` into ``path`` through :func:`bidsnet_lib.plumbing.atomic_write`."""
    text = io.StringIO(newline="")
    write(text)
    return atomic_write(path, text.getvalue())


# ----------------------------------------------------------------------------- evaluation
def _std(values: list[float]) -> float:
    """The spread over pairs (NaN pairs left out); NaN when a value is infinite (a perfect fill)."""
    a = np.asarray(values, dtype=np.float64)
    a = a[~np.isnan(a)]
    return float(a.std()) if len(a) and np.isfinite(a).all() else math.nan


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()  # (H, W, 3)


def evaluate(model, images, mask_groups, *, label: str = "BIDS-Net", baselines=None,
             radius: int = 3, lpips=None, fid_features=None, skipped: Mapping[str, str] | None = None,
             batch_size: int = 16, seed: int = 0, progress: bool = True,
             protocol: str | None = None, cache=None, n_resamples: int = N_RESAMPLES) -> EvalResult:
    """Every metric for the model(s) and the baselines on every (mask, photo) pair of each group,
    with bootstrap intervals over photos and each model's paired differences to each baseline.

    ``model``: a BIDSNet, an ``Inpainter``, any callable ``(image, mask) -> image`` on tensors, a
    dict ``{name: one of those}``, or None (baselines only). ``images``: RGB uint8 (H, W, 3)
    arrays, as a dict by name or a list. ``mask_groups``: ``MaskGroup``s (see
    :func:`load_mask_groups`) or a dict ``{name: [masks]}``; masks are resized to each photo.
    ``baselines``: names (``"telea"``, ``"ns"``, ``"biharmonic"``, ``"patchmatch"``) or baseline
    objects (:func:`bidsnet_lib.baselines.make_baseline`); None: :func:`default_baselines`.
    ``radius``: Telea's and NS's neighbourhood. ``cache``: a folder keeping the outputs of the
    slow baselines (:class:`bidsnet_lib.baselines.CachedBaseline`), or None.
    ``lpips``: a metric ``(pred, target) -> (B,)`` with a ``label`` (an ``LPIPSMetric``) or None;
    ``fid_features``: a feature extractor ``images (B, 3, H, W) -> (B, D)`` or None. A metric
    left None is reported as skipped, with the reason from ``skipped`` if given.
    ``n_resamples`` and ``seed`` set the bootstrap.
    """
    if isinstance(images, Mapping):
        photos = dict(images)
    elif isinstance(images, Sequence) and not isinstance(images, str):
        photos = {f"image {i}": im for i, im in enumerate(images)}
    else:
        raise TypeError(f"images: got {type(images).__name__}; expected a dict or list of RGB uint8 arrays")
    if not photos:
        raise ValueError("images: got none; expected at least one photo")
    for name, im in photos.items():
        if not isinstance(im, np.ndarray) or im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3 \
                or min(im.shape[:2]) < MIN_SIZE:
            raise ValueError(f"images[{name!r}]: got {getattr(im, 'dtype', type(im).__name__)} "
                             f"{getattr(im, 'shape', '')}; expected RGB uint8 (H, W, 3), sides >= {MIN_SIZE}")
    if isinstance(mask_groups, Mapping):
        groups = [MaskGroup("masks", str(k), list(v)) for k, v in mask_groups.items()]
    else:
        groups = list(mask_groups)
    if not groups or not all(isinstance(g, MaskGroup) for g in groups):
        raise ValueError(f"mask_groups: got {groups!r:.80}; expected a non-empty list of MaskGroup "
                         "or a dict {name: [masks]}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: got {batch_size!r}; expected an int >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: got {seed!r}; expected an int >= 0")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples: got {n_resamples!r}; expected an int >= 1")
    if lpips is not None and not callable(lpips):
        raise TypeError(f"lpips: got {type(lpips).__name__}; expected a metric (pred, target) -> (B,) or None")
    if fid_features is not None and not callable(fid_features):
        raise TypeError(f"fid_features: got {type(fid_features).__name__}; expected a feature "
                        "extractor images (B, 3, H, W) -> (B, D) or None")
    methods, baseline_names = _methods(model, label, default_baselines() if baselines is None else baselines,
                                       radius, cache)
    skipped = dict(skipped or {})
    notes = {"psnr": "10·log10(1/MSE) per image on [0, 1]",
             "ssim": "Gaussian window 11, σ 1.5, per image",
             "lpips": getattr(lpips, "label", "LPIPS (custom metric)") if lpips is not None
             else f"skipped: {skipped.get('lpips', 'not requested')}",
             "fid": f"skipped: {skipped.get('fid', 'not requested')}",
             "colour": f"per filled hole, the distance (0-255 RGB) of its mean colour from that of "
                       f"the known pixels within {COLOUR_RING} px of it, area-weighted over the holes"}
    if fid_features is not None:
        fid_name = getattr(fid_features, "name", type(fid_features).__name__)
        fid_comparable = bool(getattr(fid_features, "comparable", False))
        notes["fid"] = (f"{fid_name}{'' if fid_comparable else ' (NOT comparable to published FID)'}"
                        f"; per row from its n real and n generated images: below {FID_MIN_IMAGES} "
                        "biased upwards, compare only at equal n; no interval")
    shapes = {im.shape[:2] for im in photos.values()}
    if protocol is None:
        size = "x".join(map(str, next(iter(shapes)))) if len(shapes) == 1 else "their own sizes"
        protocol = f"{len(photos)} photos at {size}."
    confidence = f"{100 * CONFIDENCE:g} %"
    protocol += (f" Each mask of a group is paired with each of the {len(photos)} photos; each photo's "
                 f"scores are averaged over the group's masks, and [brackets] give the {confidence} "
                 f"percentile bootstrap interval of the mean over photos ({n_resamples:,} resamples "
                 f"of the {len(photos)} photos, seed {seed}).")
    stats = {"seed": seed, "n_resamples": n_resamples}

    names = list(photos)
    total = sum(len(g.masks) for g in groups) * len(names)
    rows, per_photo, comparisons, examples, few_fid = [], [], [], [], []
    timing = {name: [0.0, 0] for name in methods}
    with torch.random.fork_rng(devices=[]), tqdm(total=total, unit="pair", desc="evaluate",
                                                  disable=not progress) as bar:
        torch.manual_seed(seed)
        for g_index, group in enumerate(groups):
            shown = int(np.random.default_rng([seed, g_index]).integers(len(names) * len(group.masks)))
            run = _run_group(group, photos, methods, lpips, fid_features, batch_size, shown, bar, timing)
            examples.append(run["example"])
            common = {"set": group.set_name, "group": group.name,
                      "hole_ratio": float(np.mean(run["ratios"])), "n": len(run["ratios"]),
                      "n_photos": len(names)}
            means = {}  # method -> metric -> per-photo means, in photo order
            for name in [*methods, REFERENCE]:
                for metric in METRICS:
                    if name == REFERENCE and metric != "colour":
                        continue
                    value, low, high, std, note = math.nan, math.nan, math.nan, math.nan, notes[metric]
                    if metric == "fid" and run["fid"]:
                        result = run["fid"][name]
                        value, note = result.fid, result.label
                        if result.n_fake < max(FID_MIN_IMAGES, result.feature_dim + 1):
                            few_fid.append(result.n_fake)
                    elif metric != "fid" and not note.startswith("skipped"):
                        pairs = run["scores"][name][metric]
                        photo_means = _photo_means(pairs, run["photos"], names)
                        means.setdefault(name, {})[metric] = photo_means
                        per_photo += [{"set": group.set_name, "group": group.name, "photo": p,
                                       "method": name, "metric": metric, "value": v,
                                       "n_masks": len(group.masks)} for p, v in zip(names, photo_means, strict=True)]
                        value, std = float(np.mean(photo_means)), _std(pairs)
                        low, high = bootstrap_interval(photo_means, n_resamples=n_resamples, seed=seed)
                    rows.append({**common, "method": name, "metric": metric, "value": value,
                                 "ci_low": low, "ci_high": high, "std": std,
                                 "note": "" if metric in ("psnr", "ssim") else note})
            comparisons += _compare(group, means, [m for m in methods if m not in baseline_names],
                                    baseline_names, stats)
    if few_fid:
        warnings.warn(f"FID per group from {min(few_fid)} to {max(few_fid)} images: far below the "
                      f"{FID_MIN_IMAGES} a stable estimate needs; biased upwards, compare only at "
                      "equal n (stated in every row)", FIDSampleSizeWarning, stacklevel=2)
    seconds = {name: (t / n if n else math.nan) for name, (t, n) in timing.items()}
    return EvalResult(rows, list(methods), notes, protocol, examples, baselines=baseline_names,
                      per_photo=per_photo, comparisons=comparisons, seconds=seconds, bootstrap=stats)


def _photo_means(pairs: list[float], photo_of_pair: list[str], names: list[str]) -> list[float]:
    """Each photo's mean over its pairs (NaN pairs, holes without a ring, left out)."""
    values = np.asarray(pairs, dtype=np.float64)
    owners = np.asarray(photo_of_pair)
    means = []
    for name in names:
        v = values[owners == name]
        v = v[~np.isnan(v)]
        means.append(float(v.mean()) if len(v) else math.nan)
    return means


def _compare(group: MaskGroup, means: dict, models: list[str], baselines: list[str], stats: dict) -> list[dict]:
    """Each model against each baseline on the compared metrics: paired differences over photos."""
    out = []
    for metric in COMPARED:
        present = [b for b in baselines if metric in means.get(b, {})]
        if not present:
            continue
        higher = HIGHER_IS_BETTER[metric]
        group_means = {b: np.mean(means[b][metric]) for b in present}
        best = (max if higher else min)(present, key=lambda b: group_means[b])
        for model in models:
            if metric not in means.get(model, {}):
                continue
            for baseline in present:
                diff = paired_difference(means[model][metric], means[baseline][metric],
                                         higher_is_better=higher, n_resamples=stats["n_resamples"],
                                         seed=stats["seed"])
                out.append({"set": group.set_name, "group": group.name, "model": model,
                            "baseline": baseline, "metric": metric, **diff, "best": baseline == best})
    return out


def _batches(pairs: list[tuple[str, int]], photos: dict, batch_size: int):
    """Consecutive pairs in batches of at most batch_size whose photos share one shape."""
    batch = []
    for pair in pairs:
        if batch and (len(batch) == batch_size
                      or photos[pair[0]].shape != photos[batch[0][0]].shape):
            yield batch
            batch = []
        batch.append(pair)
    if batch:
        yield batch


def _fid_metrics(extractor, methods) -> dict[str, FIDMetric]:
    first = next(extractor.parameters(), None) if isinstance(extractor, torch.nn.Module) else None
    device = None if first is None else first.device
    return {name: FIDMetric(extractor, device=device) for name in methods}


def _run_group(group: MaskGroup, photos: dict, methods: dict, lpips, fid_features, batch_size: int,
               shown: int, bar, timing: dict) -> dict:
    """Scores, FIDs, hole ratios and photo of every pair of a group, and pair ``shown``'s example;
    adds each method's seconds and images to ``timing``."""
    # Photo-major: at native size consecutive pairs share a photo, so batches have one shape.
    pairs = [(p, m) for p in photos for m in range(len(group.masks))]
    scores = {name: {"psnr": [], "ssim": [], "lpips": [], "colour": []} for name in methods}
    scores[REFERENCE] = {"colour": []}
    fid = _fid_metrics(fid_features, methods) if fid_features is not None else {}
    ratios, owners, example, done = [], [], None, 0
    for batch in _batches(pairs, photos, batch_size):
        shape = photos[batch[0][0]].shape[:2]
        holes = [fit_mask(group.masks[m], shape) for _, m in batch]
        for (p, m), h in zip(batch, holes, strict=True):
            if not h.any():
                source = group.sources[m] if group.sources else f"mask {m}"
                raise ValueError(f"mask group {group.label}: {source} has no hole left at "
                                 f"{shape[0]}x{shape[1]} (photo {p!r}); use a larger size")
        ratios += [hole_ratio(h) for h in holes]
        owners += [p for p, _ in batch]
        target = torch.from_numpy(np.stack([photos[p] for p, _ in batch]))
        target = target.permute(0, 3, 1, 2).float() / 255  # (B, 3, H, W)
        mask = torch.from_numpy(np.stack(holes)).float()[:, None]  # (B, 1, H, W)
        scores[REFERENCE]["colour"] += hole_colour_error(target, mask).tolist()
        real = next(iter(fid.values())).features(target) if fid else None
        outputs = {}
        for name, method in methods.items():
            start = time.perf_counter()
            out = method(target, mask)
            # A cached baseline reports the seconds its outputs took when they were computed.
            timing[name][0] += getattr(method, "last_seconds", time.perf_counter() - start)
            timing[name][1] += len(batch)
            if not isinstance(out, torch.Tensor) or out.shape != target.shape:
                raise ValueError(f"method {name!r} returned {getattr(out, 'shape', type(out).__name__)}; "
                                 f"expected a tensor {tuple(target.shape)}")
            # Composited again (a custom callable might not) and rounded as a saved PNG would be.
            out = composite((out.detach().float().clamp(0, 1) * 255).round() / 255, target, mask)
            scores[name]["psnr"] += psnr(out, target).tolist()
            scores[name]["ssim"] += ssim(out, target).tolist()
            scores[name]["colour"] += hole_colour_error(out, mask).tolist()
            if lpips is not None:
                scores[name]["lpips"] += lpips(out, target).flatten().tolist()
            if fid:
                fid[name].add_features(real=real, fake=fid[name].features(out))
            outputs[name] = out
        if done <= shown < done + len(batch):
            i = shown - done
            p, m = batch[i]
            example = Example(group.label, p, group.sources[m] if group.sources else "",
                              _to_uint8(target[i]), holes[i],
                              {name: _to_uint8(o[i]) for name, o in outputs.items()})
        done += len(batch)
        bar.update(len(batch))
    with warnings.catch_warnings():  # one warning for all groups, issued by evaluate()
        warnings.simplefilter("ignore", FIDSampleSizeWarning)
        fids = {name: metric.compute() for name, metric in fid.items()}
    return {"scores": scores, "fid": fids, "ratios": ratios, "photos": owners, "example": example}


def write_outputs(result: EvalResult, out) -> dict[str, Path]:
    """results.csv, results.md, results.json, per_photo.csv, metrics_vs_hole_ratio.png and
    examples.png in folder ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": result.write_csv(out / "results.csv"),
             "markdown": _write_atomic(out / "results.md", lambda f: f.write(result.markdown() + "\n")),
             "json": result.write_json(out / "results.json"),
             "per_photo": result.write_per_photo_csv(out / "per_photo.csv")}
    for key, name, fig in (("figure", "metrics_vs_hole_ratio.png", result.figure()),
                           ("examples", "examples.png", result.examples_figure())):
        fig.savefig(out / name, dpi=100)
        paths[key] = out / name
    return paths
