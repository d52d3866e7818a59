"""Inpaint any photo with a trained BIDS-Net: ``Inpainter``, behind the ``bidsnet inpaint`` command.

Used by ``notebooks/08_demo.ipynb`` (draw a mask, inpaint). The network works at a fixed working
resolution (the size it was trained at, 256 by default), so a photo of any size goes through it
the way users of inpainting tools expect:

1. the holes are split into groups whose surroundings overlap (connected components, merged);
2. each group gets a crop: its bounding box plus a margin of context, grown to at least the
   working size so that a small hole is inpainted at full resolution (sharp);
3. every crop is padded to working size x working size, all crops of all images run in batches;
   a crop larger than the working square is filled coarse to fine at its own resolution, in
   tiles (the default for a model with a residual head, :meth:`Inpainter._fill_by_levels`), or
   else shrunk to the working square and its fill upscaled back (the thumbnail path, blurry);
4. only the hole pixels of each group are pasted back: known pixels stay bit for bit.

The command writes each result in its photo's own form (:meth:`bidsnet_lib.plumbing.Photo.with_rgb`):
grey stays grey, 16-bit grey stays 16-bit (PNG, TIFF), and the alpha channel is written back
unchanged, holes included: the model sees transparent areas as white (the library's one alpha
rule, as in training) and fills colour only. JPEG is written at quality 95 with a note that it
is lossy; WebP is written lossless. Folder mode checks every pair first, reports every problem,
writes each result atomically as it is done and exits 1 when any image was skipped.

Command line (``bidsnet_lib.commands.inpaint``)::

    bidsnet inpaint IMAGE MASK -o OUT.png
    bidsnet inpaint --images DIR --masks DIR -o OUT_DIR   # pairs by file stem
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from bidsnet_lib.plumbing import (
    DEFAULT_WORK_SIZE,
    Photo,
    check_finite_float,
    check_int,
    check_multiple,
    describe_path,
    got_expected,
    read_mask,
    read_photo,
    resolve_device,
)

# Package data (pyproject.toml), so a pip install carries it and any working directory finds it.
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "bidsnet_small.pt"
# Where notebook 06 exports the learner's own model (full mode): runs/ beside the notebooks; on
# Colab the same name on Google Drive, which outlives the session.
LEARNER_EXPORT = "06_model.pt"
COLAB_RUNS = Path("/content/drive/MyDrive/bidsnet_runs")
MAX_GROUPS = 64  # more separate holes than this (speckle) are inpainted as one union crop
# Coarse-to-fine tiles overlap by an eighth of their side, not a quarter: 20-30 % fewer tiles on
# two 2-Mpx photos, -0.17 to +0.04 dB.
TILE_OVERLAP_DIVISOR = 8


def course_checkpoint(runs="runs", colab_runs=COLAB_RUNS) -> tuple[Path | None, str]:
    """The model notebooks 07 and 08 use, and a line saying which: the learner's own export from
    notebook 06 (``runs/06_model.pt``, or on Colab ``06_model.pt`` in ``colab_runs`` on Drive) when
    it exists, else the shipped checkpoint; ``(None, why)`` when there is neither."""
    for folder in (Path(runs), Path(colab_runs)):
        if (folder / LEARNER_EXPORT).is_file():
            return folder / LEARNER_EXPORT, f"your own model, exported by notebook 06: {folder / LEARNER_EXPORT}"
    looked = f"no {LEARNER_EXPORT} from notebook 06 in {runs} or {colab_runs}"
    if SHIPPED_CHECKPOINT.is_file():
        return SHIPPED_CHECKPOINT, f"the shipped model {SHIPPED_CHECKPOINT} ({looked})"
    return None, f"no trained model: {looked}, and the shipped {SHIPPED_CHECKPOINT} is missing"


# ----------------------------------------------------------------------------- input forms
def read_pair(image, mask, image_name: str = "image", mask_name: str = "mask") -> tuple[Photo, np.ndarray]:
    """A photo and its mask of the same size, each through the one opener of its kind
    (:func:`bidsnet_lib.plumbing.read_photo`, :func:`bidsnet_lib.plumbing.read_mask`)."""
    photo = read_photo(image, image_name)
    holes = read_mask(mask, mask_name)
    if holes.shape != photo.rgb.shape[:2]:
        raise ValueError(f"{mask_name}: got {holes.shape[0]}x{holes.shape[1]}, expected the size of {image_name}, "
                         f"{photo.rgb.shape[0]}x{photo.rgb.shape[1]} (height x width)")
    return photo, holes


def _pair(image, mask, index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    suffix = "" if index is None else f"[{index}]"
    photo, holes = read_pair(image, mask, f"image{suffix}", f"mask{suffix}")
    return photo.rgb, holes


# ----------------------------------------------------------------------------- crop planning
@dataclass(frozen=True)
class Crop:
    """One model input cut from an image: rows top:top+height, columns left:left+width."""

    top: int
    left: int
    height: int
    width: int
    own: np.ndarray  # (height, width) bool: the hole pixels this crop pastes back


def _context_box(box, margin: float, min_margin: int) -> tuple[int, int, int, int]:
    """A box (y0, x0, y1, x1) widened by its context margin on every side."""
    y0, x0, y1, x1 = box
    pad = max(min_margin, round(margin * max(y1 - y0, x1 - x0)))
    return y0 - pad, x0 - pad, y1 + pad, x1 + pad


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _fit(start: int, end: int, least: int, limit: int) -> tuple[int, int]:
    """Grow [start, end) about its centre to at least `least` long, then slide it inside [0, limit)."""
    length = min(max(end - start, least), limit)
    start = (start + end) // 2 - length // 2
    start = min(max(start, 0), limit - length)
    return start, start + length


def plan_crops(holes: np.ndarray, work_size: int, margin: float = 0.5, min_margin: int = 16) -> list[Crop]:
    """Split the holes of a (H, W) 0/1 mask into crops (see the module docstring); [] when no hole.

    Holes whose context boxes (bounding box + `margin` x its longer side, at least `min_margin`
    pixels) overlap share a crop; each hole pixel belongs to exactly one crop's `own`.
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=8)
    if count <= 1:
        return []
    boxes = [(s[cv2.CC_STAT_TOP], s[cv2.CC_STAT_LEFT], s[cv2.CC_STAT_TOP] + s[cv2.CC_STAT_HEIGHT],
              s[cv2.CC_STAT_LEFT] + s[cv2.CC_STAT_WIDTH]) for s in stats[1:]]
    groups = [[i + 1] for i in range(count - 1)]  # component labels (0 is the background)
    if len(groups) > MAX_GROUPS:
        groups = [list(range(1, count))]
        boxes = [(min(b[0] for b in boxes), min(b[1] for b in boxes),
                  max(b[2] for b in boxes), max(b[3] for b in boxes))]
    contexts = [_context_box(b, margin, min_margin) for b in boxes]
    i = 0
    while i < len(groups):  # merge until no two context boxes overlap
        j = next((j for j in range(len(groups)) if j != i and _overlap(contexts[i], contexts[j])), None)
        if j is None:
            i += 1
            continue
        a, b = boxes[i], boxes[j]
        boxes[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
        contexts[i] = _context_box(boxes[i], margin, min_margin)
        groups[i] += groups[j]
        for items in (boxes, contexts, groups):
            del items[j]
        i = 0  # the grown box may now reach groups already checked
    height, width = holes.shape
    crops = []
    for box, group in zip(boxes, groups, strict=True):
        y0, x0, y1, x1 = _context_box(box, margin, min_margin)
        top, bottom = _fit(max(y0, 0), min(y1, height), work_size, height)
        left, right = _fit(max(x0, 0), min(x1, width), work_size, width)
        own = np.isin(labels[top:bottom, left:right], group)
        crops.append(Crop(int(top), int(left), int(bottom - top), int(right - left), own))
    return crops


# ----------------------------------------------------------------------------- coarse to fine
def level_scales(hole: np.ndarray, work_size: int) -> list[float]:
    """The scales, coarsest first and ending at 1, at which coarse to fine fills a crop whose holes
    are ``hole`` (h, w) 0/1: the first is the coarsest at which the thickest hole spans at most half
    the working square (never coarser than the whole crop in one square; thin scribbles start, and
    end, at full resolution); each next one doubles it."""
    check_int("work_size", work_size, 1)
    # Thickness: twice the largest distance from a hole pixel to known pixels.
    thickness = 2 * float(cv2.distanceTransform(np.asarray(hole, np.uint8), cv2.DIST_L2, 3).max())
    scales = [min(1.0, max(work_size / max(hole.shape), work_size / (2 * max(thickness, 1.0))))]
    while scales[-1] < 1:
        scales.append(min(1.0, 2 * scales[-1]))
    return scales


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of side ``tile`` covering [0, length), neighbours overlapping by at least ``overlap``."""
    if length <= tile:
        return [0]
    count = 1 + -(-(length - tile) // (tile - overlap))  # ceil: the last tile ends at `length`
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def blend_ramp(length: int, overlap: int, before: bool, after: bool) -> np.ndarray:
    """(length,) blending weights of a tile along one axis: rising linearly over ``overlap`` pixels
    at an edge shared with a neighbour tile (``before``/``after``), 1 elsewhere; never 0, so every
    pixel is covered. A pixel's fill is the weighted mean of the tiles over it."""
    position = np.arange(length, dtype=np.float32)
    ramp = np.ones(length, np.float32)
    if before:
        ramp = np.minimum(ramp, (position + 1) / (overlap + 1))
    if after:
        ramp = np.minimum(ramp, (length - position) / (overlap + 1))
    return ramp


def _reflect_to(array: np.ndarray, side: int) -> np.ndarray:
    """``array`` (h, w[, c]) padded by reflection to (side, side[, c]) at its bottom and right."""
    h, w = array.shape[:2]
    if (h, w) == (side, side):
        return np.ascontiguousarray(array, dtype=np.float32)
    return cv2.copyMakeBorder(array.astype(np.float32), 0, side - h, 0, side - w, cv2.BORDER_REFLECT)


def _check_coarse_to_fine(model, coarse_to_fine) -> None:
    if not isinstance(coarse_to_fine, bool):
        raise TypeError(got_expected("coarse_to_fine", coarse_to_fine, "True or False"))
    if coarse_to_fine and getattr(getattr(model, "config", None), "output", None) != "residual":
        raise ValueError(got_expected("coarse_to_fine", True, "a model with a residual head (config.output "
                                      "'residual'), which corrects the fill it is given"))


# ----------------------------------------------------------------------------- the inpainter
class Inpainter:
    """Inpaint photos of any size with a model ``model(image, mask) -> (B, 3, H, W)`` in [0, 1].

    `model` is a ``BIDSNet`` (or any callable on (B, 3, H, W) images and (B, 1, H, W) masks, such
    as ``bidsnet_lib.baselines.make_baseline("telea")``). `work_size` is the side of the square the
    model sees (its training size; a multiple of the model's stride). `margin` is the context kept
    around a hole, as a fraction of its size. `label` names the model wherever results are shown.
    `mirror` averages each fill with the model's fill of the mirrored crop, mirrored back (twice
    the model time): on the validation split it added +0.0004 to +0.0013 SSIM and +0.03 to +0.08
    dB to the trained small model at 256 px (every mask group), so :meth:`from_checkpoint` turns it on.
    `coarse_to_fine` fills a crop larger than the working square level by level up to its own
    resolution, in tiles (:meth:`_fill_by_levels`), instead of from one thumbnail upscaled
    (blurry); it needs a model with a residual head. On two high-resolution test photos (2-3 Mpx)
    it beat Telea's PSNR by +0.2 to +2.2 dB under every mask kind, and the thumbnail path too, at
    12-46 CPU-seconds a photo on one thread (the thumbnail path: a few seconds). A crop that fits
    the working square is filled alike either way (so 256-px evaluations do not change).
    :meth:`from_checkpoint` turns it on for a model with a residual head; this constructor keeps
    it off, as it takes any callable.
    """

    def __init__(self, model, *, work_size: int = DEFAULT_WORK_SIZE, device=None, batch_size: int = 8,
                 margin: float = 0.5, label: str = "BIDS-Net", mirror: bool = False,
                 coarse_to_fine: bool = False):
        if not callable(model):
            raise TypeError(f"model: got {type(model).__name__}, expected a BIDSNet or a callable model(image, mask)")
        stride = getattr(getattr(model, "config", None), "stride", 1)
        check_multiple("work_size", work_size, stride, f"the model's stride {stride}")
        check_int("batch_size", batch_size, 1)
        check_finite_float("margin", margin, 0)
        if not isinstance(mirror, bool):
            raise TypeError(got_expected("mirror", mirror, "True or False"))
        _check_coarse_to_fine(model, coarse_to_fine)
        if isinstance(model, torch.nn.Module):
            first = next(model.parameters(), None)
            self.device = resolve_device(device, "device") if device is not None else (
                first.device if first is not None else torch.device("cpu"))
            model = model.to(self.device).eval()
        else:
            self.device = torch.device("cpu" if device is None else device)
        self.model = model
        self.work_size, self.batch_size, self.margin, self.label = work_size, batch_size, float(margin), label
        self.mirror, self.coarse_to_fine = mirror, coarse_to_fine

    @classmethod
    def from_checkpoint(cls, path=None, device=None, **kwargs) -> Inpainter:
        """Load an inference checkpoint; no `path`: the one shipped in the package (:data:`SHIPPED_CHECKPOINT`).

        ``mirror`` is on, and ``coarse_to_fine`` too when the model has a residual head (the shipped
        one does); pass either as False to turn it off."""
        from bidsnet_lib.checkpoint import load_inference_model, work_size

        if path is None:
            if not SHIPPED_CHECKPOINT.is_file():
                raise FileNotFoundError(
                    f"the shipped checkpoint {SHIPPED_CHECKPOINT} is missing: it is package data of "
                    "bidsnet_lib, so reinstall the package (`pip install --force-reinstall` from the "
                    "repository), or train one with `bidsnet train`, export it and pass its path")
            path = SHIPPED_CHECKPOINT
        path = Path(path)
        if path.is_dir():
            hint = (f"its {path / 'latest.pt'} (a training checkpoint), or a file made from it by "
                    f"`bidsnet export {path} OUT.pt`") if (path / "latest.pt").is_file() else "a .pt file"
            raise ValueError(got_expected("checkpoint", str(path), f"a checkpoint file, not a folder; pass {hint}"))
        if not path.is_file():
            raise FileNotFoundError(got_expected("checkpoint", str(path), f"a checkpoint file; there is {describe_path(path)}"))
        model, meta = load_inference_model(path, device=device)
        try:
            size = work_size(meta)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: {error}") from None
        kwargs.setdefault("work_size", size)
        kwargs.setdefault("label", f"BIDS-Net ({model.config.form}, {path.name})")  # what the model is, which file
        kwargs.setdefault("mirror", True)
        kwargs.setdefault("coarse_to_fine", model.config.output == "residual")
        return cls(model, device=device, **kwargs)

    def inpaint(self, image, mask, *, coarse_to_fine: bool | None = None):
        """Fill the holes of one image (uint8 (H, W, 3) out, known pixels unchanged); lists -> list.

        `coarse_to_fine`: this call's choice (None: the inpainter's own), e.g. False for a quick preview."""
        if isinstance(image, list | tuple):
            return self.inpaint_many(image, mask, coarse_to_fine=coarse_to_fine)
        return self._inpaint_pairs([_pair(image, mask)], coarse_to_fine)[0]

    def inpaint_many(self, images, masks, *, coarse_to_fine: bool | None = None) -> list[np.ndarray]:
        """`inpaint` for equally long sequences of images and masks, with the crops of all in batches."""
        if not isinstance(images, list | tuple) or not isinstance(masks, list | tuple):
            raise TypeError(f"images, masks: got {type(images).__name__} and {type(masks).__name__}, expected lists")
        if len(images) != len(masks):
            raise ValueError(f"images, masks: got {len(images)} images and {len(masks)} masks, expected equally long lists")
        return self._inpaint_pairs([_pair(img, m, i) for i, (img, m) in enumerate(zip(images, masks, strict=True))],
                                   coarse_to_fine)

    def _inpaint_pairs(self, pairs: list[tuple[np.ndarray, np.ndarray]],
                       coarse_to_fine: bool | None = None) -> list[np.ndarray]:
        """Inpaint checked (RGB (H, W, 3), holes (H, W)) pairs."""
        if coarse_to_fine is None:
            coarse_to_fine = self.coarse_to_fine
        _check_coarse_to_fine(self.model, coarse_to_fine)
        outputs = [rgb.copy() for rgb, _ in pairs]
        jobs = [(i, crop) for i, (_, holes) in enumerate(pairs)
                for crop in plan_crops(holes, self.work_size, self.margin)]
        if coarse_to_fine:  # crops larger than the working square: level by level, in tiles
            fits = [max(crop.height, crop.width) <= self.work_size for _, crop in jobs]
            large = [job for job, fit in zip(jobs, fits, strict=True) if not fit]
            jobs = [job for job, fit in zip(jobs, fits, strict=True) if fit]
            for i, crop in large:
                self._paste(outputs[i], crop, self._fill_by_levels(*pairs[i], crop))
        for start in range(0, len(jobs), self.batch_size):
            batch = jobs[start : start + self.batch_size]
            inputs = [self._model_input(*pairs[i], crop) for i, crop in batch]
            image = torch.from_numpy(np.stack([x for x, _, _ in inputs])).permute(0, 3, 1, 2)  # (N, 3, S, S)
            mask = torch.from_numpy(np.stack([m for _, m, _ in inputs]))[:, None]  # (N, 1, S, S)
            with torch.inference_mode():
                pred = self._predict(image.to(self.device), mask.to(self.device))  # (N, 3, S, S)
            pred = pred.permute(0, 2, 3, 1).cpu().numpy()  # (N, S, S, 3)
            for (i, crop), (_, _, size), p in zip(batch, inputs, pred, strict=True):
                self._paste(outputs[i], crop, p[: size[0], : size[1]])
        return outputs

    def _predict(self, image: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor | None = None,
                 mirror: bool | None = None) -> torch.Tensor:
        """The model's (N, 3, S, S) output; ``fill``: the holes' input fill (coarse-to-fine levels)."""
        extra = {} if fill is None else {"fill": fill}
        if not (self.mirror if mirror is None else mirror):
            pred = self.model(image, mask, **extra).float()
        else:  # one call on the crops and their mirror images (a batch of 2N), then the average
            twice = {name: torch.cat([x, x.flip(-1)]) for name, x in {"image": image, "mask": mask, **extra}.items()}
            direct, mirrored = self.model(**twice).float().chunk(2)
            pred = (direct + mirrored.flip(-1)) / 2
        if not torch.isfinite(pred).all():  # never paste NaN (black) or inf into a photo
            raise ValueError(got_expected("model output", "NaN or infinite values", "finite pixels; the "
                                 f"model {self.label} is broken (its weights or its input)"))
        return pred.clamp(0, 1)

    def _fill_by_levels(self, rgb, holes, crop: Crop) -> np.ndarray:
        """The crop's fill at its own resolution, (height, width, 3) in [0, 1], coarse to fine.

        One level at each scale of :func:`level_scales`, coarsest first: a level above the first
        takes the fill of the level below, upscaled, as its input fill, and the residual head adds
        the detail of this scale. Every level runs in overlapping working-size tiles
        (:meth:`_tiled`), so memory follows the tile, not the photo."""
        window = (slice(crop.top, crop.top + crop.height), slice(crop.left, crop.left + crop.width))
        patch = rgb[window].astype(np.float32) / 255  # (H, W, 3)
        hole = holes[window].astype(np.uint8)  # (H, W): every hole in the window is hidden
        fill = None
        for scale in level_scales(hole, self.work_size):
            size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
            if scale < 1:
                level_patch = np.clip(cv2.resize(patch, size, interpolation=cv2.INTER_AREA), 0, 1)
                # A pixel touched by a hole counts as hole, so no removed content leaks into the context.
                level_hole = (cv2.resize(hole.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0)
            else:
                level_patch, level_hole = patch, hole.astype(bool)
            if fill is not None:
                fill = np.clip(cv2.resize(fill, size, interpolation=cv2.INTER_CUBIC), 0, 1)
            # The mirror average (twice the model time) only for a first level coarser than the crop:
            # at its own resolution (thin scribbles) it doubled the time of the whole fill for
            # +0.06 to +0.25 dB on two 2-Mpx photos.
            mirror = self.mirror and fill is None and scale < 1
            fill = self._tiled(level_patch, level_hole.astype(np.float32), fill, mirror)
        return fill  # the last level's, at the crop's own resolution

    def _tiled(self, patch: np.ndarray, hole: np.ndarray, fill: np.ndarray | None, mirror: bool) -> np.ndarray:
        """``patch`` (h, w, 3) with its holes (h, w) filled by the model in working-size tiles that
        overlap by an eighth; tiles without a hole are skipped, the overlaps blended with weights
        that ramp linearly to the tile's inner edges. ``fill``: the holes' input fill (None: the
        model's own); ``mirror``: average each tile's fill with its mirror image's."""
        s = self.work_size
        h, w = hole.shape
        overlap = s // TILE_OVERLAP_DIVISOR
        starts = [tile_starts(length, s, overlap) for length in (h, w)]
        tiles = [(y, x) for y in starts[0] for x in starts[1] if hole[y : y + s, x : x + s].any()]
        total = np.zeros((h, w, 3), np.float32)
        weight = np.zeros((h, w, 1), np.float32)
        for first in range(0, len(tiles), self.batch_size):
            batch = tiles[first : first + self.batch_size]
            images, masks, fills = [], [], []
            for y, x in batch:
                cut = (slice(y, y + s), slice(x, x + s))
                images.append(_reflect_to(patch[cut], s))
                masks.append(_reflect_to(hole[cut], s))
                if fill is not None:
                    fills.append(_reflect_to(fill[cut], s))
            image = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(self.device)  # (N, 3, S, S)
            mask = torch.from_numpy(np.stack(masks))[:, None].to(self.device)  # (N, 1, S, S)
            given = torch.from_numpy(np.stack(fills)).permute(0, 3, 1, 2).to(self.device) if fills else None
            with torch.inference_mode():
                pred = self._predict(image, mask, given, mirror=mirror)
            for (y, x), p in zip(batch, pred.permute(0, 2, 3, 1).cpu().numpy(), strict=True):
                th, tw = min(s, h - y), min(s, w - x)
                ramp = (blend_ramp(th, overlap, y > 0, y + s < h)[:, None]
                        * blend_ramp(tw, overlap, x > 0, x + s < w)[None])
                total[y : y + th, x : x + tw] += p[:th, :tw] * ramp[..., None]
                weight[y : y + th, x : x + tw] += ramp[..., None]
        filled = np.where(weight > 0, total / np.maximum(weight, 1e-12), patch)
        return np.where(hole[..., None] > 0, filled, patch)

    def _model_input(self, rgb, holes, crop: Crop):
        """The crop scaled to fit the working square and padded to it: (S, S, 3), (S, S), (h, w)."""
        s = self.work_size
        window = (slice(crop.top, crop.top + crop.height), slice(crop.left, crop.left + crop.width))
        patch = rgb[window].astype(np.float32) / 255  # (h, w, 3)
        # Every hole in the window is hidden, the crop's own and any other group's alike.
        hole = holes[window].astype(np.float32)  # (h, w)
        scale = min(1.0, s / max(crop.height, crop.width))
        if scale < 1:
            size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
            patch = np.clip(cv2.resize(patch, size, interpolation=cv2.INTER_AREA), 0, 1)  # float overshoot
            # A pixel touched by a hole counts as hole, so no removed content leaks into the context.
            hole = (cv2.resize(hole, size, interpolation=cv2.INTER_AREA) > 0).astype(np.float32)
        h, w = hole.shape
        # Reflect both, so a hole near the border is mirrored as a hole, not as known content.
        patch = cv2.copyMakeBorder(patch, 0, s - h, 0, s - w, cv2.BORDER_REFLECT)  # (S, S, 3)
        hole = cv2.copyMakeBorder(hole, 0, s - h, 0, s - w, cv2.BORDER_REFLECT)  # (S, S)
        return patch, hole, (h, w)

    @staticmethod
    def _paste(out, crop: Crop, pred) -> None:
        """Write the prediction (h, w, 3) in [0, 1] into `out` at the crop's own hole pixels only."""
        if pred.shape[:2] != (crop.height, crop.width):
            pred = cv2.resize(pred, (crop.width, crop.height), interpolation=cv2.INTER_CUBIC)
        pixels = np.clip(np.rint(pred * 255), 0, 255).astype(np.uint8)  # (height, width, 3)
        region = out[crop.top : crop.top + crop.height, crop.left : crop.left + crop.width]
        region[crop.own] = pixels[crop.own]
