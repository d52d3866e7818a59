"""Masks as files: `MaskFolder` (a folder of mask files, searched recursively, grouped by hole
ratio), and `write_eval_set`, which writes the fixed evaluation set shipped in
``bidsnet_lib/eval_masks``. One file is opened by :func:`bidsnet_lib.plumbing.read_mask`, the
library's one mask opener.

Taught in ``notebooks/01_masks.ipynb`` (external mask sets, the fixed evaluation set). The
convention of :mod:`bidsnet_lib.masks`: 1 = hole, 0 = known, a mask is (H, W) ``uint8`` 0/1.
"""

from __future__ import annotations

import numbers
import os
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from bidsnet_lib.masks.draw import (
    EVAL_PRESETS,
    LARGE_MASK_PRESETS,
    RATIO_BINS,
    SHIPPED_MASKS,
    _check_bin,
    _check_rng,
    _check_size,
    bin_name,
    hole_ratio,
    irregular_mask,
    large_mask,
    rotate_flip,
)
from bidsnet_lib.plumbing import (
    DEFAULT_WORK_SIZE,
    IMAGE_EXTENSIONS,
    MASK_THRESHOLD,
    atomic_move,
    atomic_write,
    check_fraction,
    check_int,
    check_writable_folder,
    got_expected,
    image_files,
    read_mask,
    stale_temps,
    temp_name,
)

SET_ENTRIES = ("README.md", "set1", "set2")  # what a folder written by write_eval_set holds


def _parse_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, numbers.Integral) else size
    if (isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in pair)):
        raise TypeError(got_expected("size", size, "None, an int or (height, width)"))
    if min(pair) < 1:
        raise ValueError(got_expected("size", size, "positive sides"))
    return int(pair[0]), int(pair[1])


class MaskFolder:
    """Masks from a folder of PNG/JPG files (searched recursively, sorted by path), as (H, W) uint8 0/1.

    Each file is opened by :func:`bidsnet_lib.plumbing.read_mask` (EXIF rotation followed; hole =
    value > `threshold` of full scale; `invert` for sets where white = known), resized to `size`
    with nearest neighbour, then randomly rotated and/or flipped when `rotate`/`flip` are on.
    """

    def __init__(self, root, size=None, *, threshold=MASK_THRESHOLD, invert=False, rotate=False, flip=False,
                 rng=None, channel_tolerance=0.25):
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"root: got {str(self.root)!r} (no such folder), expected a folder of mask images")
        self.paths = image_files(self.root, recursive=True)
        if not self.paths:
            raise ValueError(got_expected("mask folder", str(self.root), f"a folder holding {'/'.join(IMAGE_EXTENSIONS)} files"))
        self.size = _parse_size(size)
        self.threshold = check_fraction("threshold", threshold, high_open=True)
        self.invert = bool(invert)
        self.rotate, self.flip = bool(rotate), bool(flip)
        self.rng = _check_rng(rng)
        self.channel_tolerance = check_fraction("channel_tolerance", channel_tolerance)
        self._ratios: list[float] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> np.ndarray:
        """Mask `index`, binarised and resized but not augmented: (H, W) uint8 0/1."""
        check_int("index", index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} masks")
        path = self.paths[index]
        mask = read_mask(path, str(path), threshold=self.threshold, invert=self.invert,
                         channel_tolerance=self.channel_tolerance)
        if self.size is not None and mask.shape != self.size:
            mask = cv2.resize(mask, (self.size[1], self.size[0]), interpolation=cv2.INTER_NEAREST)
        return mask

    def __getitem__(self, index: int) -> np.ndarray:
        mask = self.load(index)
        if self.rotate or self.flip:
            mask = rotate_flip(mask, self.rng, rotate=self.rotate, flip=self.flip)
        return mask

    def ratios(self) -> list[float]:
        """Hole ratio of every mask (before augmentation), read once and cached."""
        if self._ratios is None:
            self._ratios = [hole_ratio(self.load(i)) for i in range(len(self))]
        return list(self._ratios)

    def by_bin(self, bins=RATIO_BINS) -> dict[tuple[float, float], list[int]]:
        """Indices of the masks in each ratio bin (low <= ratio < high); masks in no bin are left out."""
        bins = [_check_bin(b, "bins") for b in bins]
        groups = {b: [] for b in bins}
        for index, ratio in enumerate(self.ratios()):
            for low, high in bins:
                if low <= ratio < high:
                    groups[(low, high)].append(index)
        return groups


# ----------------------------------------------------------------------------- the shipped set
def _png_bytes(mask: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", mask * np.uint8(255), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG")
    return buffer.tobytes()


def write_eval_set(out, size=DEFAULT_WORK_SIZE, seed=0, per_bin=10, per_preset=20, presets=EVAL_PRESETS) -> list[Path]:
    """Write the fixed evaluation masks as 0/255 PNGs (255 = hole) plus a README; returns the PNG paths.

    ``out/set1/<10-20>/NNN.png``: Mask Set I, `per_bin` masks per bin of RATIO_BINS.
    ``out/set2/<preset>/NNN.png``: Mask Set II, `per_preset` masks per preset, masks over 50 %
    rejected as in LaMa's evaluation. Mask NNN of bin or preset number g in set s is drawn with
    ``numpy.random.default_rng([seed, s, g, NNN])``, so a file does not depend on which others are
    written, and the same seed rewrites the same bytes. The new set is written into a temporary
    folder beside ``out`` and swapped in whole at the end: a failure or Ctrl-C midway leaves the
    previous set as it was, never a mix. ``out`` must be new, empty or hold a mask set only (it is
    replaced whole), and may not be the shipped set (``SHIPPED_MASKS``), which stays read-only.
    """
    given, out = Path(out), Path(out).expanduser().resolve()  # the README names the folder as given
    if out == SHIPPED_MASKS.resolve():
        raise ValueError(got_expected("out", str(out), "a folder of your own; the shipped set is read-only (to "
                                      "regenerate it, write elsewhere and compare or copy by hand)"))
    for name, value in (("seed", seed), ("per_bin", per_bin), ("per_preset", per_preset)):
        check_int(name, value, 0)
    _check_size(size, size, ("size", "size"))
    if out.exists() and not out.is_dir():
        raise ValueError(got_expected("out", str(out), "a folder for the mask set; it is a file"))
    others = sorted(p.name for p in out.iterdir() if p.name not in SET_ENTRIES) if out.is_dir() else []
    if others:
        raise ValueError(got_expected("out", str(out), "a new or empty folder, or one holding a mask set only "
                                      f"({', '.join(SET_ENTRIES)}), as it is replaced whole; it holds "
                                      f"{', '.join(others[:5])}{' ...' if len(others) > 5 else ''}"))
    for name in presets:
        if name not in LARGE_MASK_PRESETS:
            raise ValueError(got_expected("presets", name, f"names from {sorted(LARGE_MASK_PRESETS)}"))
    # (set folder, group folder, set number, group number, count, mask maker)
    groups = [("set1", bin_name(b), 1, g, per_bin, lambda rng, b=b: irregular_mask(size, size, b, rng))
              for g, b in enumerate(RATIO_BINS)]
    groups += [("set2", name, 2, list(LARGE_MASK_PRESETS).index(name), per_preset,
                lambda rng, name=name: large_mask(size, size, name, rng, 0.5)) for name in presets]
    check_writable_folder(out.parent, "out")  # a read-only place is named as such, not by a temporary path
    for stale in stale_temps(out):  # what a killed write left beside it
        shutil.rmtree(stale, ignore_errors=True)
    staging = temp_name(out)
    try:
        for set_name, group, set_number, group_number, count, make in groups:
            for i in range(count):
                mask = make(np.random.default_rng([seed, set_number, group_number, i]))
                atomic_write(staging / set_name / group / f"{i:03d}.png", _png_bytes(mask))
        atomic_write(staging / "README.md", _readme(given, size, seed, per_bin, per_preset, presets))
        staging.mkdir(exist_ok=True)  # an empty set (per_bin and per_preset 0) is a folder too
        if out.exists():  # the old set steps aside in one rename, the new one takes its place in another
            old = temp_name(out)
            os.replace(out, old)
            atomic_move(staging, out)
            shutil.rmtree(old)
        else:
            atomic_move(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(out.glob("set[12]/*/*.png"))


def _readme(out: Path, size: int, seed: int, per_bin: int, per_preset: int, presets) -> str:
    command = (f"bidsnet masks write --out {shlex.quote(str(out))} --size {size} --seed {seed}"
               f" --per-bin {per_bin} --per-preset {per_preset}")
    if tuple(presets) != EVAL_PRESETS:
        command += f" --presets {' '.join(presets)}"
    return f"""# Fixed evaluation masks

Written by

    {command}

from `bidsnet_lib/masks/files.py`; the same command writes these files byte for byte into any
folder (`tests/test_masks.py` compares them with the shipped set, which is read-only). Every file is a {size}x{size} 8-bit PNG: 255 = hole, 0 = known.

- `set1/<low>-<high>/NNN.png`: Mask Set I (irregular strokes and polygons, rotated and flipped),
  {per_bin} masks per hole-ratio bin; a mask in `set1/10-20/` has 10 % <= hole ratio < 20 %.
- `set2/<preset>/NNN.png`: Mask Set II (LaMa's large masks), {per_preset} masks for each of the presets
  {', '.join(presets)}; masks covering more than 50 % are redrawn, as in LaMa's evaluation.

Mask NNN of bin b (0 = 10-20, ..., 4 = 50-60) in set1 comes from
`numpy.random.default_rng([seed, 1, b, NNN])`; mask NNN of preset p (0 = thin, 1 = medium,
2 = thick, 3 = train) in set2 from `numpy.random.default_rng([seed, 2, p, NNN])`.
"""
