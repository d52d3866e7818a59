"""The evaluation's inputs: test photos (centre-cropped squares or native size), mask groups (one
per Set I hole-ratio bin and Set II preset), and stand-in data for installs without ``data/``.

Used by :func:`bidsnet_lib.evaluate.evaluate` and ``bidsnet evaluate``; taught in
``notebooks/07_evaluation.ipynb``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bidsnet_lib import rehearsal
from bidsnet_lib.masks import (
    EVAL_PRESETS,
    LARGE_MASK_PRESETS,
    MIN_SIZE,
    RATIO_BINS,
    MaskFolder,
    bin_name,
    hole_ratio,
    square_photo,
    write_eval_set,
)
from bidsnet_lib.plumbing import (
    check_int,
    images_by_stem,
    read_photo,
)

STANDIN_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")  # scikit-image's, for installs without data/
SET_NAMES = {"set1": "Set I", "set2": "Set II"}
_BIN_PATTERN = re.compile(r"^\d+-\d+$")


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
            raise ValueError(f"masks of group {self.name!r}: got {got}, expected a non-empty list "
                             "of (H, W) 0/1 arrays")
        for i, m in enumerate(self.masks):
            if not isinstance(m, np.ndarray) or m.ndim != 2:
                raise ValueError(f"masks[{i}] of group {self.name!r}: got "
                                 f"{getattr(m, 'shape', type(m).__name__)}, expected an (H, W) array")
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

    check_int("per_group", per_group, 1, optional=True)  # None: every mask
    photos, masks = Path(folder) / "photos", Path(folder) / "masks"
    photos.mkdir(parents=True, exist_ok=True)
    for name in STANDIN_PHOTOS:
        Image.fromarray(getattr(skdata, name)()).save(photos / f"{name}.png")
    write_eval_set(masks, per_bin=per_group or 10, per_preset=per_group or 20)
    return photos, masks

def load_mask_groups(source, limit: int | None = None) -> list[MaskGroup]:
    """The mask groups of a folder: the shipped layout (``set1/<bin>``, ``set2/<preset>``), one
    set's folder (``bidsnet_lib/eval_masks/set1``), or any folder of masks, split into hole-ratio bins.

    ``limit`` keeps the first masks (sorted by path) of each group; under ``make rehearsal``
    (``bidsnet_lib.rehearsal()``) one, whatever ``limit`` says: every evaluation loop cut, the
    groups kept.
    """
    check_int("limit", limit, 1, optional=True)
    if rehearsal():
        limit = 1
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
    groups, binned = [], folder.by_bin()
    outside = sorted(set(range(len(folder))) - {i for indices in binned.values() for i in indices})
    if outside and len(outside) < len(folder):  # said, not silently dropped (all outside is an error below)
        ratios = folder.ratios()
        warnings.warn(f"{len(outside)} of the {len(folder)} masks in {str(root)!r} are left out: their hole ratios "
                      f"({', '.join(f'{ratios[i]:.1%}' for i in outside[:3])}{' ...' if len(outside) > 3 else ''}) "
                      f"are in none of the bins {[bin_name(b) for b in RATIO_BINS]} (%), e.g. "
                      f"{folder.paths[outside[0]].name}", stacklevel=2)
    for ratio_bin, indices in binned.items():
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
    check_int("size", size, MIN_SIZE, optional=True)  # None: each photo at its own size
    check_int("limit", limit, 1, optional=True)
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"images: no such folder {str(folder)!r}")
    by_stem, shared = images_by_stem(folder, "images")
    if shared:  # results are keyed by stem: one of the two would silently be dropped
        raise ValueError(f"images: {'; '.join(shared.values())} (rename one: results are labelled by stem)")
    paths = sorted(by_stem.values())
    photos = {}
    for path in paths[:limit]:
        rgb = read_photo(path, f"images: {path.name}").rgb  # (H, W, 3)
        if min(rgb.shape[:2]) < MIN_SIZE:
            raise ValueError(f"images: got {path.name} of {rgb.shape[0]}x{rgb.shape[1]}, expected both sides "
                             f">= {MIN_SIZE}")
        photos[path.stem] = rgb if size is None else square_photo(rgb, size)
    return photos


def fit_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A 0/1 mask resized to (H, W) with nearest neighbour, which keeps it binary."""
    if mask.shape == tuple(shape):
        return mask
    return cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
