"""Evaluating at a photo's own resolution (issue 28): every photo of a folder with its own masks
(``data/test_hires_masks/<kind>/<photo stem>/NNN.png``, drawn at the photo's size by
:func:`bidsnet_lib.masks.write_native_set`), nothing resized, one table block per mask kind.

A method is any ``fill(rgb, holes) -> rgb`` on (H, W, 3) uint8 photos and (H, W) 0/1 masks:
:meth:`bidsnet_lib.inference.Inpainter.inpaint` (the model, by either path) or
:func:`whole_photo_baseline` (OpenCV and the others on the whole photo, no crops). Each fill is
scored on the whole photo (PSNR, SSIM: known pixels are exact in every method's output, so the
differences come from the hole) and by its hole sharpness (:func:`bidsnet_lib.evaluate.realism.hole_sharpness`,
1 = as detailed as the truth), with its seconds and the peak memory the process grew by while
it ran. Means carry 95 % bootstrap intervals over photos (a photo's masks averaged first), and
every method is compared photo by photo with each baseline.

A run is long (an hour on 2 cores for the 27 photos), so each scored fill is appended to a
:class:`RowJournal` in the output folder as it is made: a run that is stopped goes on, with the
same command, from the fill it was at.
"""

import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bidsnet_lib.baselines import make_baseline
from bidsnet_lib.bootstrap import bootstrap_interval, paired_difference
from bidsnet_lib.evaluate.realism import hole_sharpness
from bidsnet_lib.masks import NATIVE_KINDS
from bidsnet_lib.plumbing import IMAGE_EXTENSIONS, check_int, got_expected, read_mask, read_photo

NATIVE_METRICS = ("psnr", "ssim", "sharpness", "seconds", "peak_mb")
HIRES_JOURNAL = "rows_hires.jsonl"  # bidsnet evaluate --hires's RowJournal in --out


@dataclass(frozen=True)
class NativePair:
    """One photo and its masks of one kind."""

    kind: str
    photo: Path
    masks: tuple[Path, ...]


def load_native_set(images, masks_root, limit: int | None = None) -> list[NativePair]:
    """Every photo of ``images`` paired with its own masks of each kind in ``masks_root``, kinds in
    :data:`NATIVE_KINDS` order; ``limit`` masks per photo and kind at most. A photo without masks
    of a kind, or a mask folder without its photo, is an error: the set must be complete."""
    images, masks_root = Path(images), Path(masks_root)
    check_int("limit", limit, 1, optional=True)
    for name, folder in (("images", images), ("masks", masks_root)):
        if not folder.is_dir():
            raise ValueError(got_expected(name, str(folder), "a folder"))
    photos = {p.stem: p for p in sorted(images.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
    if not photos:
        raise ValueError(got_expected("images", str(images), "a folder of photos"))
    kinds = [k for k in NATIVE_KINDS if (masks_root / k).is_dir()]
    if not kinds:
        raise ValueError(got_expected("masks", str(masks_root), f"subfolders named {', '.join(NATIVE_KINDS)}"))
    pairs = []
    for kind in kinds:
        folders = {f.name: f for f in (masks_root / kind).iterdir() if f.is_dir()}
        if set(folders) != set(photos):
            missing = sorted(set(photos) - set(folders)) or sorted(set(folders) - set(photos))
            raise ValueError(got_expected(f"masks/{kind}", f"folders for {len(folders)} photos",
                                          f"one folder per photo of {images}; unmatched: {', '.join(missing[:5])}"))
        for stem, photo in photos.items():
            files = tuple(sorted(folders[stem].glob("*.png")))[:limit]
            if not files:
                raise ValueError(got_expected(f"masks/{kind}/{stem}", "no .png masks", "at least one"))
            pairs.append(NativePair(kind, photo, files))
    return pairs


def whole_photo_baseline(name: str, radius: int | None = None) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A baseline of :mod:`bidsnet_lib.baselines` run on the whole photo at once, as ``fill(rgb, holes)``."""
    baseline = make_baseline(name, radius)

    def fill(rgb: np.ndarray, holes: np.ndarray) -> np.ndarray:
        image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)
        mask = torch.from_numpy(holes.astype(np.float32))[None, None]  # (1, 1, H, W)
        out = baseline(image, mask)[0].permute(1, 2, 0).clamp(0, 1).numpy()
        filled = np.rint(out * 255).astype(np.uint8)
        return np.where(holes[..., None] > 0, filled, rgb)

    return fill


class PeakMemory:
    """The most the process's resident memory grew, in MB, while the ``with`` block ran (sampled
    every ``interval`` seconds in a thread, and once at each end)."""

    def __init__(self, interval: float = 0.01):
        self.interval, self.peak_mb = interval, 0.0
        self._process, self._stop = psutil.Process(), threading.Event()

    def _sample(self, start: int) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, (self._process.memory_info().rss - start) / 2**20)

    def __enter__(self) -> "PeakMemory":
        self._start = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, args=(self._start,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, (self._process.memory_info().rss - self._start) / 2**20, 0.0)


def score_fill(output: np.ndarray, truth: np.ndarray, holes: np.ndarray) -> dict[str, float]:
    """PSNR (dB) and SSIM over the whole photo, and the hole sharpness of one fill."""
    images = [torch.from_numpy(np.array(x)).permute(2, 0, 1)[None].float() / 255 for x in (output, truth)]
    sharp = hole_sharpness(*images, torch.from_numpy(holes.astype(np.float32))[None, None])
    with np.errstate(divide="ignore"):  # a perfect fill: PSNR +inf
        psnr = peak_signal_noise_ratio(truth, output, data_range=255)
    return {"psnr": float(psnr),
            "ssim": float(structural_similarity(truth, output, channel_axis=2, data_range=255)),
            "sharpness": float(sharp[0])}


@dataclass
class NativeResult:
    """One row per (kind, method, photo, mask): :data:`NATIVE_METRICS`; summaries by kind and method."""

    rows: list[dict] = field(default_factory=list)
    baselines: tuple[str, ...] = ()

    def photo_means(self, kind: str, method: str, metric: str) -> dict[str, float]:
        """{photo: the mean over its masks} for one kind and method."""
        values: dict[str, list[float]] = {}
        for row in self.rows:
            if row["kind"] == kind and row["method"] == method:
                values.setdefault(row["photo"], []).append(row[metric])
        return {photo: float(np.mean(v)) for photo, v in sorted(values.items())}

    def kinds(self) -> list[str]:
        return list(dict.fromkeys(row["kind"] for row in self.rows))

    def methods(self) -> list[str]:
        return list(dict.fromkeys(row["method"] for row in self.rows))

    def summary(self, seed: int = 0) -> list[dict]:
        """Per kind and method: each metric's mean over photos and its 95 % interval, and for every
        other method the paired PSNR, SSIM and sharpness differences to each baseline."""
        table = []
        for kind in self.kinds():
            for method in self.methods():
                entry = {"kind": kind, "method": method}
                for metric in NATIVE_METRICS:
                    values = list(self.photo_means(kind, method, metric).values())
                    entry[metric] = float(np.mean(values))
                    entry[f"{metric}_ci"] = bootstrap_interval(values, seed=seed)
                for baseline in self.baselines if method not in self.baselines else ():
                    for metric in ("psnr", "ssim", "sharpness"):
                        ours, theirs = (self.photo_means(kind, m, metric) for m in (method, baseline))
                        entry[f"{metric}_vs_{baseline}"] = paired_difference(list(ours.values()),
                                                                             list(theirs.values()), seed=seed)
                entry["photos"] = len(self.photo_means(kind, method, "psnr"))
                table.append(entry)
        return table

    def markdown(self, seed: int = 0) -> str:
        """The summary as Markdown: one block per kind, then the differences to the baselines."""
        summary = self.summary(seed)
        lines = ["| mask kind | method | PSNR (dB) | SSIM | hole sharpness | s / photo | peak MB |",
                 "|---|---|---|---|---|---|---|"]
        for e in summary:
            cells = [f"{e[m]:{f}} [{e[m + '_ci'][0]:{f}}, {e[m + '_ci'][1]:{f}}]"
                     for m, f in (("psnr", ".2f"), ("ssim", ".4f"), ("sharpness", ".2f"))]
            lines.append(f"| {e['kind']} | {e['method']} | {' | '.join(cells)} | {e['seconds']:.1f} | {e['peak_mb']:.0f} |")
        lines += ["", "Differences, photo by photo (mean [95 % interval], share of photos better):", "",
                  "| mask kind | method | vs | ΔPSNR (dB) | ΔSSIM | Δsharpness |", "|---|---|---|---|---|---|"]
        for e in summary:
            for baseline in self.baselines if e["method"] not in self.baselines else ():
                cells = [_difference(e[f"{m}_vs_{baseline}"], f) for m, f in (("psnr", "+.2f"), ("ssim", "+.4f"),
                                                                                ("sharpness", "+.2f"))]
                lines.append(f"| {e['kind']} | {e['method']} | {baseline} | {' | '.join(cells)} |")
        return "\n".join(lines) + "\n"


def _difference(d: dict, form: str) -> str:
    if math.isnan(d["diff"]):
        return "n/a"
    return f"{d['diff']:{form}} [{d['ci_low']:{form}}, {d['ci_high']:{form}}], {d['wins']:.0%}"


class RowJournal:
    """Scored fills kept one JSON line each in ``path``, as they are made, after a first line with
    the ``settings`` that made them; a rerun with the same settings reads them back instead of
    filling again. Other settings are refused (a row of another checkpoint would be mixed in).
    A line cut short by a kill (the last, with no newline) is cut off: that fill is made again."""

    def __init__(self, path, settings: dict):
        self.path, self.settings = Path(path), json.loads(json.dumps(settings))
        self.rows: dict[tuple, dict] = {}
        if not self.path.is_file():
            self._write(json.dumps({"settings": self.settings}) + "\n", "w")
            return
        text = self.path.read_text(encoding="utf-8")
        if not text.endswith("\n"):  # a kill while a line was written: cut it, or the next row would join it
            text = text[:text.rfind("\n") + 1]
            with open(self.path, "r+", encoding="utf-8") as f:
                f.truncate(len(text.encode("utf-8")))
        lines = text.splitlines()
        try:
            header = json.loads(lines[0]).get("settings") if lines else None
        except (json.JSONDecodeError, AttributeError):
            raise ValueError(got_expected(str(self.path), "a first line that is not a settings header",
                                          "a journal written by bidsnet evaluate --hires: choose another --out, "
                                          "or delete the file")) from None
        if header != self.settings:
            differing = sorted(k for k in set(header or {}) | set(self.settings)
                               if (header or {}).get(k) != self.settings.get(k))
            raise ValueError(got_expected(str(self.path), f"rows made with other settings (differing: {differing})",
                                          "rows of this run's settings: choose another --out, or delete the file "
                                          "to evaluate afresh"))
        for number, line in enumerate(lines[1:], 2):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{self.path}: line {number} is not JSON; expected one scored fill a line") from None
            self.rows[self.key(row)] = row

    @staticmethod
    def key(row: dict) -> tuple:
        return row["kind"], row["method"], row["photo"], row["mask"]

    def append(self, row: dict) -> None:
        self._write(json.dumps(row) + "\n", "a")
        self.rows[self.key(row)] = row

    def _write(self, text: str, mode: str) -> None:
        with open(self.path, mode, encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # on disk before the next fill starts: a kill loses at most that one


def evaluate_native(methods: dict[str, Callable], pairs: list[NativePair], baselines=(), progress=None,
                    journal: RowJournal | None = None) -> NativeResult:
    """Run every method on every photo and mask of ``pairs`` at the photo's own size and score it.
    ``baselines``: the names in ``methods`` the others are compared with. ``progress(row)``: called
    after each fill (a print, a bar). ``journal``: fills it holds are taken from it, new ones are
    appended to it."""
    if not methods or not all(callable(m) for m in methods.values()):
        raise ValueError(got_expected("methods", methods, "a non-empty {name: fill(rgb, holes)} dict"))
    unknown = [b for b in baselines if b not in methods]
    if unknown:
        raise ValueError(got_expected("baselines", unknown, f"names among the methods {list(methods)}"))
    result = NativeResult(baselines=tuple(baselines))
    for pair in pairs:
        truth = read_photo(pair.photo, "photo").rgb
        for mask_path in pair.masks:
            holes = read_mask(mask_path, "mask")
            if holes.shape != truth.shape[:2]:
                raise ValueError(got_expected(str(mask_path), f"a {holes.shape[1]}x{holes.shape[0]} mask",
                                              f"the photo's own size {truth.shape[1]}x{truth.shape[0]}"))
            for name, fill in methods.items():
                kept = None if journal is None else journal.rows.get((pair.kind, name, pair.photo.stem, mask_path.name))
                if kept is not None:
                    result.rows.append(kept)
                    continue
                with PeakMemory() as memory:
                    start = time.perf_counter()
                    output = fill(truth, holes)
                    seconds = time.perf_counter() - start
                row = {"kind": pair.kind, "method": name, "photo": pair.photo.stem, "mask": mask_path.name,
                       **score_fill(output, truth, holes), "seconds": seconds, "peak_mb": memory.peak_mb}
                result.rows.append(row)
                if journal is not None:
                    journal.append(row)
                if progress is not None:
                    progress(row)
    return result
