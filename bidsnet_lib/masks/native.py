"""Masks drawn at a photo's own resolution (issue 28): one object-sized blob, thick strokes and
thin scribbles, whose sizes scale with the photo, and ``write_native_set``, the fixed mask set of
the high-resolution test photos (``data/images/test_hires``).

The 256-px sets of :mod:`.draw` are stretched to a photo's size when a photo is larger; a thin
line stretched 8x is no longer thin. These are drawn at the photo's (H, W) instead: every length
is a fraction of the photo's scale ``sqrt(H * W)`` (``photo_scale``), so a 2,048-px photo gets a
blob, strokes and scribbles of the same shape and hole ratio as a 1,024-px one, with widths in
proportion (thin scribbles at least ``MIN_LINE_WIDTH`` px wide). Each mask's hole ratio lies in
its kind's range, ``low <= ratio < high`` (``NATIVE_KINDS``), the same for every seed.

Convention of :mod:`bidsnet_lib.masks`: 1 = hole, 0 = known, a mask is (H, W) ``uint8`` 0/1.
Deterministic given a ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
import re
import zlib
from pathlib import Path

import cv2
import numpy as np

from bidsnet_lib.masks.draw import _check_rng, _check_size
from bidsnet_lib.plumbing import (
    DATA_DIR,
    atomic_write,
    check_choice,
    check_int,
    got_expected,
    image_files,
    image_size,
)

# Hole-ratio range of each kind, [low, high): the ranges of issue 28's table.
NATIVE_KINDS = {"blob": (0.06, 0.14), "strokes": (0.25, 0.40), "scribbles": (0.04, 0.09)}
# Brush widths, as fractions of photo_scale: a thick stroke is 4-8 % of it (about 70-140 px on a
# 2,048x1,536 photo), a thin scribble 0.4-0.8 % (7-14 px there, 3-7 px on 1,024x683).
STROKE_WIDTH = (0.04, 0.08)
SCRIBBLE_WIDTH = (0.004, 0.008)
MIN_LINE_WIDTH = 2  # px: a scribble is never drawn thinner, however small the photo
# A scribble's smallest radius of curvature, as a fraction of photo_scale: far wider than the
# line, so a curve never folds onto itself into a filled patch.
SCRIBBLE_MIN_RADIUS = 0.05
# The high-resolution test photos (tools/make_photos.py) and their fixed masks (write_native_set);
# both live in the repository's data/, which a pip install (Colab) does not have.
HIRES_IMAGES = DATA_DIR / "images" / "test_hires"
HIRES_MASKS = DATA_DIR / "test_hires_masks"
HIRES_SEED = 0
HIRES_PER_KIND = 2
_BLOB_VERTICES = 360
_BLOB_TRIES = 100  # shape draws before a blob that does not fit inside the photo is clipped


def photo_scale(height: int, width: int) -> float:
    """The length every native mask's sizes are fractions of: ``sqrt(height * width)`` px."""
    height, width = _check_size(height, width)
    return math.sqrt(height * width)


def _target(rng: np.random.Generator, kind: str, margin: float) -> float:
    """A hole ratio drawn uniformly inside the kind's range, `margin` clear of its ends (at most a
    quarter of the range: on the smallest photos one brush step is a large share of the pixels)."""
    low, high = NATIVE_KINDS[kind]
    margin = min(margin, (high - low) / 4)
    return float(rng.uniform(low + margin, high - margin))


# ----------------------------------------------------------------------------- one blob
def _blob_outline(rng: np.random.Generator) -> np.ndarray:
    """A smooth closed outline around (0, 0) of area 1, star-shaped about it: (_BLOB_VERTICES, 2)."""
    theta = np.linspace(0, 2 * np.pi, _BLOB_VERTICES, endpoint=False)  # (V,)
    harmonics = np.arange(2, 7)  # (5,): lobes, from an oval (2) to six
    amplitude = rng.uniform(-0.5, 0.5, harmonics.size) / harmonics
    phase = rng.uniform(0, 2 * np.pi, harmonics.size)
    radius = 1 + (amplitude[:, None] * np.cos(harmonics[:, None] * theta + phase[:, None])).sum(0)
    radius = np.maximum(radius, 0.3)  # (V,)
    stretch = math.sqrt(rng.uniform(1.0, 2.0))  # elongation up to 2:1
    turn = rng.uniform(0, np.pi)
    x, y = radius * np.cos(theta) * stretch, radius * np.sin(theta) / stretch
    points = np.stack([x * math.cos(turn) - y * math.sin(turn), x * math.sin(turn) + y * math.cos(turn)], 1)
    area = 0.5 * abs(np.dot(points[:, 0], np.roll(points[:, 1], 1)) - np.dot(points[:, 1], np.roll(points[:, 0], 1)))
    return points / math.sqrt(area)  # (V, 2) as (x, y)


def _fill(height: int, width: int, outline: np.ndarray, centre: np.ndarray, size: float) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    points = np.round(centre + size * outline).astype(np.int32)
    cv2.fillPoly(mask, [points], 1)  # pixels off the photo are clipped
    return mask


def blob_mask(height, width, rng=None) -> np.ndarray:
    """One object-sized blob: a smooth lobed shape (an oval up to 2:1, up to six lobes) covering
    6-14 % of the photo (``NATIVE_KINDS["blob"]``), inside the photo where it fits: (H, W) uint8 0/1.

    The outline is scaled until its pixel count lands within 0.2 % of the photo of a target drawn
    uniformly from 6.5-13.5 %, so every blob's ratio is inside the range at any size.
    """
    height, width = _check_size(height, width)
    rng = _check_rng(rng)
    total = height * width
    target = _target(rng, "blob", 0.005) * total  # pixels
    for _ in range(_BLOB_TRIES):
        outline = _blob_outline(rng)
        size = math.sqrt(target)  # the outline has area 1
        low, high = outline.min(0) * size, outline.max(0) * size  # (2,) as (x, y)
        room = np.array([width - 1, height - 1]) - (high - low)
        if (room >= 0).all():
            centre = -low + rng.random(2) * room
            break
    else:  # a photo too narrow for this blob: centred, clipped by the edges
        centre = np.array([width, height]) / 2
    # The filled count grows with size (star-shaped outlines scaled about their centre are nested),
    # so bisection finds the size whose pixel count is nearest the target.
    small, big = 0.0, 2.0 * size
    while np.count_nonzero(_fill(height, width, outline, centre, big)) < target:
        small, big = big, 2 * big
    low, high = NATIVE_KINDS["blob"]
    best, best_error = None, math.inf
    for _ in range(60):
        mask = _fill(height, width, outline, centre, size)
        count = np.count_nonzero(mask)
        if low <= count / total < high and abs(count - target) < best_error:
            best, best_error = mask, abs(count - target)
        if best_error <= 0.002 * total:
            break
        small, big = (size, big) if count < target else (small, size)
        size = 0.5 * (small + big)
    if best is None:
        raise RuntimeError(f"blob_mask: no size of the blob covers {low:.0%}-{high:.0%} of {height}x{width}")
    return best


# ----------------------------------------------------------------------------- lines
def _walk_lines(height, width, rng, target, brush, next_turn, step):
    """Paint polylines until `target` pixels are holes: each starts anywhere, heads anywhere,
    advances `step` px at a time, turning by next_turn() radians, and ends after 0.5-1.5
    ``photo_scale`` or where it would leave the photo (a line never bounces back along an edge
    onto itself). Stops mid-line at the first step that reaches the target, so the ratio
    overshoots it by one step's pixels at most. Returns (H, W) uint8 0/1."""
    mask = np.zeros((height, width), np.uint8)
    count, scale = 0, math.sqrt(height * width)
    while True:
        width_px = brush()
        point = rng.random(2) * (width - 1, height - 1)  # (x, y)
        heading = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.5, 1.5) * scale
        for _ in range(max(1, math.ceil(length / step))):
            heading += next_turn()
            new = point + step * np.array([math.cos(heading), math.sin(heading)])
            if not (0 <= new[0] <= width - 1 and 0 <= new[1] <= height - 1):
                break  # the line leaves the photo: the next one starts elsewhere
            # Count the new holes inside the segment's box only: cheap at any photo size.
            pad = width_px // 2 + 2
            x0, y0 = (np.floor(np.minimum(point, new)) - pad).astype(int).clip(0)
            x1, y1 = (np.ceil(np.maximum(point, new)) + pad + 1).astype(int)
            box = mask[y0:y1, x0:x1]
            before = np.count_nonzero(box)
            cv2.line(mask, tuple(np.round(point).astype(int).tolist()), tuple(np.round(new).astype(int).tolist()),
                     1, width_px)  # round caps: joints come out round
            count += np.count_nonzero(box) - before
            point = new
            if count >= target:
                return mask


def _step_share(step: float, width: int, total: int) -> float:
    """The largest share of the photo one brush step can add: a capsule `step` long, `width` wide
    (its pixel outline counted generously), plus 0.1 % of slack."""
    return ((step + 2) * (width + 2) + math.pi / 4 * (width + 2) ** 2) / total + 0.001


def strokes_mask(height, width, rng=None) -> np.ndarray:
    """Thick brush strokes covering 25-40 % of the photo (``NATIVE_KINDS["strokes"]``): polylines
    4-8 % of ``photo_scale`` wide, each 0.5-1.5 ``photo_scale`` long, turning by up to 1 radian at
    joints a stroke's width apart; (H, W) uint8 0/1."""
    height, width = _check_size(height, width)
    rng = _check_rng(rng)
    scale = math.sqrt(height * width)
    widths = [max(MIN_LINE_WIDTH, round(w * scale)) for w in STROKE_WIDTH]
    step = max(1.0, 0.5 * widths[0])
    target = _target(rng, "strokes", _step_share(step, widths[1], height * width)) * height * width
    state = {}

    def brush() -> int:
        state["width"] = int(rng.integers(widths[0], widths[1] + 1))
        state["joint"] = 0
        return state["width"]

    def turn() -> float:  # a joint every stroke width or so, straight in between
        state["joint"] += step
        if state["joint"] < 2 * state["width"]:
            return 0.0
        state["joint"] = 0
        return float(rng.uniform(-1.0, 1.0))

    return _walk_lines(height, width, rng, target, brush, turn, step)


def scribbles_mask(height, width, rng=None) -> np.ndarray:
    """Thin scribbles covering 4-9 % of the photo (``NATIVE_KINDS["scribbles"]``): smooth curves
    0.4-0.8 % of ``photo_scale`` wide (at least ``MIN_LINE_WIDTH`` px), each up to 0.5-1.5
    ``photo_scale`` long, so they span the photo; their curvature wanders about straight (a
    mean-reverting random walk), its radius never under ``SCRIBBLE_MIN_RADIUS`` of
    ``photo_scale``; (H, W) uint8 0/1."""
    height, width = _check_size(height, width)
    rng = _check_rng(rng)
    scale = math.sqrt(height * width)
    widths = [max(MIN_LINE_WIDTH, round(w * scale)) for w in SCRIBBLE_WIDTH]
    step = max(1.0, 0.01 * scale)
    target = _target(rng, "scribbles", _step_share(step, widths[1], height * width)) * height * width
    max_turn = step / (SCRIBBLE_MIN_RADIUS * scale)  # radians a step
    state = {"bend": 0.0}

    def brush() -> int:
        state["bend"] = float(rng.uniform(-max_turn, max_turn))
        return int(rng.integers(widths[0], widths[1] + 1))

    def turn() -> float:  # the bend drifts back towards straight: curls, not coils
        state["bend"] = float(np.clip(0.9 * state["bend"] + rng.normal(0, 0.25 * max_turn), -max_turn, max_turn))
        return state["bend"]

    return _walk_lines(height, width, rng, target, brush, turn, step)


_MAKERS = {"blob": blob_mask, "strokes": strokes_mask, "scribbles": scribbles_mask}


def native_mask(height, width, kind="blob", rng=None) -> np.ndarray:
    """A mask of one of ``NATIVE_KINDS`` ("blob", "strokes", "scribbles") drawn at (height, width)."""
    return _MAKERS[check_choice("kind", kind, _MAKERS)](height, width, rng)


# ----------------------------------------------------------------------------- the fixed set
def _png_bytes(mask: np.ndarray) -> bytes:
    # 1-bit PNG: a 2,048-px mask in a few kB; OpenCV and PIL read it back as 0/255.
    ok, buffer = cv2.imencode(".png", mask * np.uint8(255), [cv2.IMWRITE_PNG_COMPRESSION, 9,
                                                            cv2.IMWRITE_PNG_BILEVEL, 1])
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG")
    return buffer.tobytes()


def _pixels(size: str) -> int:
    width, height = map(int, size.split("x"))
    return width * height


def native_seed(seed: int, kind: str, stem: str, index: int) -> list[int]:
    """The seed of mask `index` of `kind` for the photo named `stem`: ``[seed, k, crc32(stem), index]``
    with k the kind's place in ``NATIVE_KINDS``; so a photo's masks do not depend on the other photos."""
    return [seed, list(NATIVE_KINDS).index(kind), zlib.crc32(stem.encode("utf-8")), index]


def write_native_set(photos=HIRES_IMAGES, out=HIRES_MASKS, seed=HIRES_SEED, per_kind=HIRES_PER_KIND) -> list[Path]:
    """Write the native-scale masks of every photo in the folder `photos` as 1-bit PNGs (255 = hole)
    plus a README; returns the PNG paths.

    ``out/<kind>/<photo stem>/NNN.png``: `per_kind` masks of each of ``NATIVE_KINDS`` per photo,
    each the photo's own (H, W) (its header read by the library's photo opener, EXIF rotation applied),
    mask NNN drawn with ``numpy.random.default_rng(native_seed(seed, kind, stem, NNN))``, so the
    same seed rewrites the same bytes. Drawn in memory first, each file replaced atomically, old
    NNN.png files not in the new set removed last. The defaults write the shipped set of the
    high-resolution test photos, ``data/test_hires_masks`` from ``data/images/test_hires``.
    """
    check_int("seed", seed, 0)
    check_int("per_kind", per_kind, 1)
    folder = Path(photos)
    if not folder.is_dir():
        raise ValueError(got_expected("photos", str(folder), "a folder of photos"))
    paths = image_files(folder)
    if not paths:
        raise ValueError(got_expected("photos", str(folder), "a folder holding photos; it has none"))
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(got_expected("out", str(out), "a folder for the mask set; it is a file"))
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise ValueError(got_expected("photos", str(folder), "photos with distinct names (stems)"))
    new, sizes = {}, []
    for path in paths:
        width, height = image_size(path)
        sizes.append(f"{width}x{height}")
        for kind in NATIVE_KINDS:
            for i in range(per_kind):
                mask = native_mask(height, width, kind, np.random.default_rng(native_seed(seed, kind, path.stem, i)))
                new[out / kind / path.stem / f"{i:03d}.png"] = _png_bytes(mask)
    written = [atomic_write(path, data) for path, data in new.items()]
    for old in sorted(out.glob("*/*/*.png")):
        if old.parts[-3] in NATIVE_KINDS and re.fullmatch(r"\d{3}\.png", old.name) and old not in new:
            old.unlink()
    ranges = "\n".join(f"- `{kind}/`: {low:.0%} <= hole ratio < {high:.0%}"
                       for kind, (low, high) in NATIVE_KINDS.items())
    readme = f"""# Native-scale masks

Written by `bidsnet_lib.masks.write_native_set(photos, out, seed={seed}, per_kind={per_kind})`
from `bidsnet_lib/masks/native.py`, for the {len(paths)} photos of a folder named `{folder.name}/`;
the same call rewrites these files byte for byte (`tests/test_masks_native.py` checks the
shipped set, `data/test_hires_masks`, against `data/images/test_hires`).

`<kind>/<photo stem>/NNN.png`: {per_kind} masks of each kind for each photo, at the photo's own
size ({len(set(sizes))} sizes, {min(sizes, key=_pixels)} to {max(sizes, key=_pixels)}), 1-bit PNGs: 255 = hole, 0 = known.

{ranges}

Mask NNN of kind k (0 = blob, 1 = strokes, 2 = scribbles) for the photo with stem s comes from
`numpy.random.default_rng([seed, k, zlib.crc32(s.encode()), NNN])`: a photo's masks do not
depend on which other photos the folder holds. Pair each photo only with its own masks.
"""
    atomic_write(out / "README.md", readme)
    return written
