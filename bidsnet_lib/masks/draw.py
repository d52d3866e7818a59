"""Masks drawn: Mask Set I (irregular, by hole-ratio bin), Mask Set II (LaMa's large masks),
their hole ratio, and pictures of them. Masks as files live beside it in :mod:`.files`.

Taught in ``notebooks/01_masks.ipynb``. Convention everywhere: 1 = hole (missing), 0 = known. A
mask is a (H, W) ``uint8`` array of 0/1, or a float tensor (B, 1, H, W) once it meets a model.

Command line (``bidsnet_lib.commands.masks``)::

    bidsnet masks write --out bidsnet_lib/eval_masks --size 256 --seed 0 --per-bin 10 --per-preset 20
    bidsnet masks gallery --photos data/images/test --out outputs
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import cv2
import numpy as np

from bidsnet_lib.plumbing import (
    DEFAULT_WORK_SIZE,
    atomic_write,
    check_finite_float,
    check_fraction,
    check_int,
    got_expected,
    read_photo,
)

RATIO_BINS = ((0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6))
MIN_SIZE = 32  # smallest side: below it a brush stroke is wider than a bin's worth of pixels
MAX_SIZE = 8192  # largest side: a mask set of 110 such masks is written in seconds, not hours
EVAL_PRESETS = ("thin", "medium", "thick")  # LaMa evaluates on these; "train" is for training
# The fixed evaluation set, package data (pyproject.toml): a pip install (Colab) has the same bytes.
SHIPPED_MASKS = Path(__file__).resolve().parents[1] / "eval_masks"
# LaMa's mask presets give pixel sizes for 256x256 images; other sizes scale them by their short
# side over this (a property of LaMa's configs, not of our model's working size).
LAMA_REFERENCE_SIZE = 256


# ----------------------------------------------------------------------------- input checks
def _check_size(height, width, names=("height", "width")) -> tuple[int, int]:
    for name, value in zip(names, (height, width), strict=True):
        check_int(name, value, MIN_SIZE, MAX_SIZE)
    return int(height), int(width)


def _check_rng(rng) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng()
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng: got {type(rng).__name__}, expected a numpy.random.Generator or None"
            " (make one with numpy.random.default_rng(seed))"
        )
    return rng


def _check_bin(ratio_bin, name: str = "ratio_bin") -> tuple[float, float]:
    if isinstance(ratio_bin, str | bytes) or not isinstance(ratio_bin, Sequence) or len(ratio_bin) != 2:
        raise TypeError(got_expected(name, ratio_bin, "a pair (low, high) of fractions"))
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in ratio_bin):
        raise TypeError(got_expected(name, ratio_bin, "two numbers"))
    low, high = float(ratio_bin[0]), float(ratio_bin[1])
    if not (0.0 <= low <= 1.0 and 0.0 <= high <= 1.0):
        raise ValueError(got_expected(name, ratio_bin, "two fractions inside [0, 1] (not percent)"))
    if low >= high:
        raise ValueError(got_expected(name, ratio_bin, "(low, high) with low < high"))
    return low, high


def _check_canvas(canvas) -> None:
    if not isinstance(canvas, np.ndarray) or canvas.ndim != 2 or canvas.dtype != np.uint8:
        got = f"{canvas.dtype} {canvas.shape}" if isinstance(canvas, np.ndarray) else type(canvas).__name__
        raise TypeError(f"canvas: got {got}, expected a (H, W) uint8 numpy array")


def bin_name(ratio_bin) -> str:
    """Folder name of a ratio bin: (0.1, 0.2) -> '10-20'."""
    low, high = _check_bin(ratio_bin)
    return f"{round(low * 100)}-{round(high * 100)}"


def in_bin(ratio: float, ratio_bin) -> bool:
    """A ratio lies in bin (low, high) when low <= ratio < high, so the bins tile [0, 1)."""
    low, high = _check_bin(ratio_bin)
    return low <= ratio < high


def bin_counts(low: float, high: float, n: int) -> tuple[int, int]:
    """Smallest and largest hole-pixel count k with low <= k / n < high."""
    k_low = math.ceil(low * n)
    while k_low > 0 and (k_low - 1) / n >= low:  # float rounding in low * n
        k_low -= 1
    while k_low / n < low:
        k_low += 1
    k_high = math.ceil(high * n) - 1
    while (k_high + 1) / n < high:
        k_high += 1
    while k_high >= 0 and k_high / n >= high:
        k_high -= 1
    return k_low, k_high


# ----------------------------------------------------------------------------- hole ratio
def hole_ratio(mask) -> float:
    """Fraction of hole pixels (value 1) in a 0/1 mask: a numpy array or torch tensor, any shape."""
    if hasattr(mask, "detach"):  # torch tensor, without importing torch here
        mask = mask.detach().cpu().numpy()
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"mask: got {type(mask).__name__}, expected a numpy array or torch tensor")
    if mask.size == 0:
        raise ValueError(f"mask: got shape {mask.shape}, expected a non-empty mask")
    holes = np.count_nonzero(mask)
    if mask.dtype != bool and holes != np.count_nonzero(mask == 1):
        other = mask[(mask != 0) & (mask != 1)].flat[0]
        raise ValueError(
            f"mask: got a value {other}, expected only 0 and 1 (1 = hole)"
            " (a 0/255 image? read it with bidsnet_lib.plumbing.read_mask)"
        )
    return holes / mask.size


# ----------------------------------------------------------------------------- building blocks
def draw_stroke(canvas, rng, *, max_vertices=10, max_step=0.15, max_width=0.08, max_turn=1.5, value=1):
    """Draw one free-form brush stroke into `canvas` (in place) and return its vertices (n, 2) as (x, y).

    The stroke is a random walk: a start point, then n - 1 segments whose heading turns by up to
    `max_turn` radians at each joint. Lengths are fractions of the canvas's short side.
    """
    _check_canvas(canvas)
    rng = _check_rng(rng)
    height, width = canvas.shape
    side = min(height, width)
    n = int(rng.integers(2, max_vertices + 1))
    brush = max(1, round(rng.uniform(0.2, 1.0) * max_width * side))  # pixels
    start = rng.random(2) * (width, height)  # (x, y) anywhere on the canvas
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.uniform(-max_turn, max_turn, n - 1))  # (n-1,)
    steps = rng.uniform(0.2, 1.0, n - 1) * max_step * side  # (n-1,) pixels
    points = np.empty((n, 2))
    points[0] = start
    points[1:, 0] = start[0] + np.cumsum(steps * np.cos(heading))
    points[1:, 1] = start[1] + np.cumsum(steps * np.sin(heading))
    points = np.round(points).astype(np.int32)
    # OpenCV caps every thick segment with a disc, so the joints come out round. Points off the
    # canvas are fine: OpenCV clips the drawing.
    cv2.polylines(canvas, [points], False, value, brush)
    return points


def draw_polygon(canvas, rng, *, max_vertices=10, max_radius=0.2, value=1):
    """Fill one random polygon into `canvas` (in place) and return its vertices (n, 2) as (x, y).

    Vertices sit at sorted random angles around a centre, at random distances, so the polygon is
    simple (star-shaped about its centre) however jagged. `max_radius` is a fraction of the short side.
    """
    _check_canvas(canvas)
    rng = _check_rng(rng)
    height, width = canvas.shape
    n = int(rng.integers(3, max_vertices + 1))
    centre = rng.random(2) * (width, height)  # (x, y) anywhere on the canvas
    radius = rng.uniform(0.3, 1.0) * max_radius * min(height, width)  # pixels
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))  # (n,)
    radii = radius * rng.uniform(0.3, 1.0, n)  # (n,)
    points = np.empty((n, 2))
    points[:, 0] = centre[0] + radii * np.cos(angles)
    points[:, 1] = centre[1] + radii * np.sin(angles)
    points = np.round(points).astype(np.int32)
    cv2.fillPoly(canvas, [points], value)
    return points


def rotate_flip(mask, rng, *, rotate=True, flip=True):
    """Rotate a mask by a random angle about its centre and flip it left-right / up-down (p = 1/2 each).

    Nearest-neighbour keeps it binary; corners that rotate in from outside take the mirrored
    content (reflect border) rather than coming in empty, so a rotated mask has no blank corners.
    """
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise TypeError(f"mask: got {getattr(mask, 'shape', type(mask).__name__)}, expected a (H, W) numpy array")
    rng = _check_rng(rng)
    height, width = mask.shape
    if rotate:
        matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), rng.uniform(0, 360), 1.0)
        mask = cv2.warpAffine(
            mask, matrix, (width, height), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101
        )
    if flip:
        if rng.random() < 0.5:
            mask = mask[:, ::-1]
        if rng.random() < 0.5:
            mask = mask[::-1]
    return np.ascontiguousarray(mask)


# ----------------------------------------------------------------------------- Mask Set I
@dataclass(frozen=True)
class IrregularMaskParams:
    """Shape of Mask Set I's strokes and polygons; lengths are fractions of the image's short side."""

    stroke_vertices: int = 10  # a stroke has 2..stroke_vertices vertices
    stroke_step: float = 0.15  # longest segment
    stroke_width: float = 0.08  # widest brush
    stroke_turn: float = 1.5  # radians a stroke may turn at a joint
    polygon_proba: float = 0.2  # chance a shape is a polygon rather than a stroke
    polygon_vertices: int = 10  # a polygon has 3..polygon_vertices vertices
    polygon_radius: float = 0.2  # largest polygon radius
    rotate: bool = True
    flip: bool = True

    def __post_init__(self):
        for name, low in (("stroke_vertices", 2), ("polygon_vertices", 3)):
            check_int(name, getattr(self, name), low)
        for name in ("stroke_step", "stroke_width", "stroke_turn", "polygon_radius"):
            check_finite_float(name, getattr(self, name), 0.0, low_open=True)
        check_finite_float("polygon_proba", self.polygon_proba, 0, 1)


def draw_shape(canvas, rng, params: IrregularMaskParams, shrink: float, value: int) -> None:
    """One Set I shape on ``canvas`` in place: a polygon (with ``params.polygon_proba``) or a brush
    stroke, its sizes scaled by ``shrink``; ``value`` 1 draws holes, 0 erases them."""
    # Erasing (value 0) uses strokes only: an eraser polygon would bite straight-edged gaps out.
    if value == 1 and rng.random() < params.polygon_proba:
        draw_polygon(canvas, rng, max_vertices=params.polygon_vertices,
                     max_radius=params.polygon_radius * shrink, value=value)
    else:
        draw_stroke(canvas, rng, max_vertices=params.stroke_vertices, max_step=params.stroke_step * shrink,
                    max_width=params.stroke_width * shrink, max_turn=params.stroke_turn, value=value)


SHAPE_TRIES = 300  # shape-level tries before the pixel-level finish; enough that it almost never runs


def settle(canvas, rng, params, k_low: int, k_high: int) -> np.ndarray:
    """Add shapes while fewer than k_low pixels are holes, erase while more than k_high.

    A shape that would jump past the far end of [k_low, k_high] is undone and the next shapes are
    smaller, so the count closes in on the range instead of oscillating. If shapes alone have not
    landed after SHAPE_TRIES, single pixels on the hole's edge finish the job: the loop always ends.
    """
    shrink = 1.0
    count = cv2.countNonZero(canvas)
    for _ in range(SHAPE_TRIES):
        if k_low <= count <= k_high:
            return canvas
        value = 1 if count < k_low else 0
        trial = canvas.copy()
        draw_shape(trial, rng, params, shrink, value)
        new = cv2.countNonZero(trial)
        if (value == 1 and new <= k_high) or (value == 0 and new >= k_low):
            canvas, count = trial, new
        else:
            shrink *= 0.7
    return settle_pixels(canvas, rng, k_low, k_high)


def settle_pixels(canvas, rng, k_low: int, k_high: int) -> np.ndarray:
    """Flip just enough pixels on the hole's edge (grow or shrink it) to land in [k_low, k_high]."""
    kernel = np.ones((3, 3), np.uint8)
    while True:
        count = cv2.countNonZero(canvas)
        if count < k_low:
            need, value, edge = k_low - count, 1, cv2.dilate(canvas, kernel) - canvas
        elif count > k_high:
            need, value, edge = count - k_high, 0, canvas - cv2.erode(canvas, kernel)
        else:
            return canvas
        ys, xs = np.nonzero(edge)
        if len(ys) == 0:  # an empty or full canvas has no edge yet
            ys, xs = np.nonzero(canvas != value)
        pick = rng.permutation(len(ys))[:need]
        canvas[ys[pick], xs[pick]] = value


def irregular_mask(height, width, ratio_bin=(0.1, 0.2), rng=None, *, params=None) -> np.ndarray:
    """Mask Set I: brush strokes and polygons, rotated and flipped, whose hole ratio lies in `ratio_bin`.

    Always in the bin (low <= ratio < high), never by rejection: shapes are drawn until the hole
    count reaches a target drawn uniformly inside the bin (within a twentieth of the bin), the mask
    is rotated and flipped, and then shapes are added or erased until the count is back inside
    (see `settle`). Returns (H, W) uint8 0/1.
    """
    height, width = _check_size(height, width)
    low, high = _check_bin(ratio_bin)
    rng = _check_rng(rng)
    params = IrregularMaskParams() if params is None else params
    if not isinstance(params, IrregularMaskParams):
        raise TypeError(f"params: got {type(params).__name__}, expected an IrregularMaskParams or None")
    k_low, k_high = bin_counts(low, high, height * width)
    if k_low > k_high:
        raise ValueError(f"ratio_bin {ratio_bin!r} is narrower than one pixel of a {height}x{width} mask")
    canvas = np.zeros((height, width), np.uint8)
    # Aim at a narrow window above a point drawn inside the bin, so ratios spread evenly over the
    # bin instead of piling up at one edge.
    target = int(rng.integers(k_low, k_high + 1))
    canvas = settle(canvas, rng, params, target, min(k_high, target + (k_high - k_low) // 20))
    if params.rotate or params.flip:
        canvas = rotate_flip(canvas, rng, rotate=params.rotate, flip=params.flip)
    return settle(canvas, rng, params, k_low, k_high)


# ----------------------------------------------------------------------------- Mask Set II
@dataclass(frozen=True)
class LargeMaskPreset:
    """LaMa's large-mask sampling parameters, in pixels at LAMA_REFERENCE_SIZE (256) square
    (scaled with the short side).

    Field names follow LaMa's configs. As in LaMa, `irregular_proba` and `box_proba` are weights:
    each mask is either strokes or boxes, boxes with probability box_proba / (irregular_proba + box_proba).
    """

    max_angle: int  # a segment's angle is 0.01 + randint(max_angle) radians
    max_len: int  # a segment's length is 10 + randint(max_len)
    max_width: int  # a segment's width is 5 + randint(max_width)
    min_times: int  # strokes per mask: min_times..max_times
    max_times: int
    irregular_proba: float = 1.0
    box_proba: float = 0.0
    margin: int = 0  # boxes keep this far from the border
    bbox_min_size: int = 0  # box sides: bbox_min_size..bbox_max_size
    bbox_max_size: int = 0
    box_min_times: int = 0  # boxes per mask: box_min_times..box_max_times
    box_max_times: int = 0

    def __post_init__(self):
        for f in fields(self):
            check = check_finite_float if f.name.endswith("proba") else check_int
            check(f.name, getattr(self, f.name), 0)
        if self.max_angle < 1 or self.max_len < 1 or self.max_width < 1 or self.min_times < 1:
            got = (self.max_angle, self.max_len, self.max_width, self.min_times)
            raise ValueError(got_expected("(max_angle, max_len, max_width, min_times)", got, "each >= 1"))
        if self.irregular_proba + self.box_proba <= 0:
            raise ValueError(got_expected("irregular_proba + box_proba", self.irregular_proba + self.box_proba, "> 0"))
        if self.min_times > self.max_times:
            raise ValueError(got_expected("min_times", self.min_times, f"<= max_times ({self.max_times})"))
        if self.box_proba > 0 and not (
            1 <= self.box_min_times <= self.box_max_times and 1 <= self.bbox_min_size <= self.bbox_max_size
        ):
            raise ValueError("with box_proba > 0, need 1 <= box_min_times <= box_max_times and "
                             "1 <= bbox_min_size <= bbox_max_size")


# LaMa's configs/data_gen/random_{thin,medium,thick}_256.yaml, and its training masks.
LARGE_MASK_PRESETS = {
    "thin": LargeMaskPreset(max_angle=4, max_len=40, max_width=10, min_times=4, max_times=50),
    "medium": LargeMaskPreset(max_angle=4, max_len=100, max_width=50, min_times=4, max_times=5,
                              box_proba=0.3, margin=0, bbox_min_size=10, bbox_max_size=50,
                              box_min_times=1, box_max_times=5),
    "thick": LargeMaskPreset(max_angle=4, max_len=200, max_width=100, min_times=1, max_times=5,
                             box_proba=0.3, margin=10, bbox_min_size=30, bbox_max_size=150,
                             box_min_times=1, box_max_times=3),
    "train": LargeMaskPreset(max_angle=4, max_len=200, max_width=100, min_times=1, max_times=5,
                             box_proba=1.0, margin=10, bbox_min_size=30, bbox_max_size=150,
                             box_min_times=1, box_max_times=4),
}


def draw_lama_strokes(canvas, rng, preset: LargeMaskPreset) -> None:
    """LaMa's irregular strokes, in place: each a chain of 1-5 thick segments from a random start."""
    height, width = canvas.shape
    scale = min(height, width) / LAMA_REFERENCE_SIZE
    # The published range min_times..max_times. (LaMa's own wrapper happens to allow one stroke more.)
    for i in range(int(rng.integers(preset.min_times, preset.max_times + 1))):
        x, y = int(rng.integers(width)), int(rng.integers(height))
        for _ in range(1 + int(rng.integers(5))):
            # Whole radians plus 0.01: LaMa's strokes turn in coarse steps; every other stroke mirrors.
            angle = 0.01 + int(rng.integers(preset.max_angle))
            if i % 2 == 0:
                angle = 2 * np.pi - angle
            length = (10 + int(rng.integers(preset.max_len))) * scale
            brush = max(1, round((5 + int(rng.integers(preset.max_width))) * scale))
            end_x = min(max(int(x + length * np.sin(angle)), 0), width)
            end_y = min(max(int(y + length * np.cos(angle)), 0), height)
            cv2.line(canvas, (x, y), (end_x, end_y), 1, brush)
            x, y = end_x, end_y


def draw_lama_boxes(canvas, rng, preset: LargeMaskPreset) -> None:
    """LaMa's random boxes, in place, at least `margin` from the border."""
    height, width = canvas.shape
    scale = min(height, width) / LAMA_REFERENCE_SIZE
    margin = round(preset.margin * scale)
    low = max(1, round(preset.bbox_min_size * scale))
    high = max(low, min(round(preset.bbox_max_size * scale), height - 2 * margin, width - 2 * margin))
    for _ in range(int(rng.integers(preset.box_min_times, preset.box_max_times + 1))):
        box_w, box_h = int(rng.integers(low, high + 1)), int(rng.integers(low, high + 1))
        x = int(rng.integers(margin, width - margin - box_w + 1))
        y = int(rng.integers(margin, height - margin - box_h + 1))
        canvas[y : y + box_h, x : x + box_w] = 1


_LARGE_TRIES = 1000  # rejection tries before giving up on max_hole_ratio


def large_mask(height, width, preset="thick", rng=None, max_hole_ratio=None) -> np.ndarray:
    """Mask Set II: LaMa's large masks (strokes or boxes) with a named or custom preset.

    `max_hole_ratio=0.5` rejects and redraws masks covering more than half the image, as LaMa's
    evaluation sets do. Returns (H, W) uint8 0/1.
    """
    height, width = _check_size(height, width)
    if isinstance(preset, str):
        if preset not in LARGE_MASK_PRESETS:
            raise ValueError(got_expected("preset", preset, f"one of {sorted(LARGE_MASK_PRESETS)}"))
        preset = LARGE_MASK_PRESETS[preset]
    elif not isinstance(preset, LargeMaskPreset):
        raise TypeError(f"preset: got {type(preset).__name__}, expected a name or a LargeMaskPreset")
    rng = _check_rng(rng)
    if max_hole_ratio is not None:
        max_hole_ratio = check_fraction("max_hole_ratio", max_hole_ratio)
    p_box = preset.box_proba / (preset.irregular_proba + preset.box_proba)
    for _ in range(_LARGE_TRIES):
        canvas = np.zeros((height, width), np.uint8)
        if rng.random() < p_box:
            draw_lama_boxes(canvas, rng, preset)
        else:
            draw_lama_strokes(canvas, rng, preset)
        if max_hole_ratio is None or cv2.countNonZero(canvas) <= max_hole_ratio * canvas.size:
            return canvas
    raise ValueError(f"max_hole_ratio {max_hole_ratio} rejected {_LARGE_TRIES} masks in a row; "
                     "this preset almost never draws masks that small")


# ----------------------------------------------------------------------------- tensors, pictures
def masks_to_tensor(masks):
    """(H, W) mask, (B, H, W) array or list of (H, W) masks -> float32 torch tensor (B, 1, H, W)."""
    import torch  # only here: the generators above need no torch

    stacked = np.stack(masks) if isinstance(masks, list | tuple) else np.asarray(masks)
    if stacked.ndim == 2:
        stacked = stacked[None]
    if stacked.ndim != 3:
        raise ValueError(f"masks: got shape {stacked.shape}, expected (H, W), (B, H, W) or a list of (H, W)")
    hole_ratio(stacked)  # checks the values are 0/1
    return torch.from_numpy(stacked.astype(np.float32))[:, None]  # (B, 1, H, W)


def overlay_mask(image, mask, color=(255, 255, 255), alpha=1.0) -> np.ndarray:
    """Paint the holes of `mask` (H, W) over an RGB uint8 `image` (H, W, 3): what the network sees."""
    if image.shape[:2] != mask.shape:
        raise ValueError(f"mask: got shape {mask.shape}, expected the image's height and width {image.shape[:2]}")
    holes = mask.astype(bool)[:, :, None]  # (H, W, 1)
    painted = (1 - alpha) * image + alpha * np.asarray(color, np.float32)
    return np.where(holes, painted, image).astype(np.uint8)


def square_photo(image, size: int) -> np.ndarray:
    """Centre-crop an RGB photo to a square and resize it to (size, size, 3)."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = image[top : top + side, left : left + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def mask_gallery(photos, out_dir, rng=None, *, size=DEFAULT_WORK_SIZE, columns=4) -> list[Path]:
    """Write `masks_set1.png` (a row per ratio bin) and `masks_set2.png` (a row per LaMa preset).

    `photos` are paths or RGB uint8 arrays (cycled over the columns); each tile is a photo with a
    mask's holes painted white and the mask's hole ratio above it. Returns the two paths written.
    """
    from matplotlib.figure import Figure  # no pyplot: works headless, leaves no global state

    if isinstance(photos, str | os.PathLike) or not isinstance(photos, Sequence) or not photos:
        raise ValueError(f"photos: got {photos!r:.60}, expected a non-empty list of paths or RGB arrays")
    rng = _check_rng(rng)
    tiles = [square_photo(read_photo(p, "photo").rgb if isinstance(p, str | os.PathLike) else p, size) for p in photos]
    rows = {
        "masks_set1.png": [(f"Set I {bin_name(b)} %", lambda b=b: irregular_mask(size, size, b, rng))
                           for b in RATIO_BINS],
        "masks_set2.png": [(f"Set II {name}", lambda name=name: large_mask(size, size, name, rng))
                           for name in LARGE_MASK_PRESETS],
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, makers in rows.items():
        fig = Figure(figsize=(2.2 * columns + 0.6, 2.3 * len(makers)), layout="constrained")
        axes = fig.subplots(len(makers), columns, squeeze=False)
        for row, (label, make) in enumerate(makers):
            for col in range(columns):
                mask = make()
                ax = axes[row, col]
                ax.imshow(overlay_mask(tiles[(row * columns + col) % len(tiles)], mask))
                ax.set_title(f"{hole_ratio(mask):.0%} hole", fontsize=9)
                ax.set_xticks([])
                ax.set_yticks([])
            axes[row, 0].set_ylabel(label, fontsize=10)
        written.append(atomic_write(out_dir / filename, lambda stream, fig=fig: fig.savefig(stream, format="png", dpi=100)))
    return written
