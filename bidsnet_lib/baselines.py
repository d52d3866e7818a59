"""Classical inpainting baselines: OpenCV's Telea (2004) and Navier–Stokes (Bertalmío et al. 2001),
scikit-image's biharmonic inpainting (Damelin & Hoang 2018) and PatchMatch (Barnes et al. 2009).

Taught in ``notebooks/07_evaluation.ipynb``. They sit behind the model's interface so every table
can put them side by side: ``make_baseline("telea", radius=3)(image, mask)`` takes an image
(B, 3, H, W) float in [0, 1] and a mask (B, 1, H, W) with 1 = hole, and returns (B, 3, H, W) in
[0, 1] with the known pixels unchanged bit for bit, like ``composite(model(image, mask), ...)``.
``baseline.fill(rgb, hole)`` does the same for one uint8 image (H, W, 3) and a 0/1 mask (H, W).

Telea and NS propagate the hole's border inwards (a fast-marching weighted average; isophote
transport by a fluid-dynamics PDE), biharmonic solves the smoothest continuation of the border
(the biharmonic equation), so the three fill thin strokes well and large holes with smears.
PatchMatch copies patches of the known image into the hole (the exemplar method most image
editors ship), so it keeps texture but can paste the wrong content. Every method works on the
8-bit image, so its output depends only on the rounded input: :class:`CachedBaseline` keeps the
outputs of the slow ones (biharmonic, PatchMatch) on disk, keyed by that input.
"""

from __future__ import annotations

import hashlib
import time
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import torch

from bidsnet_lib.model import check_inputs, composite, fill_each
from bidsnet_lib.plumbing import atomic_write, check_choice, check_int, read_mask

BASELINES = {"telea": "Telea", "ns": "Navier-Stokes", "biharmonic": "Biharmonic",
             "patchmatch": "PatchMatch"}
OPENCV_FLAGS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
PATCHMATCH_PACKAGE = "pypatchmatch==2.2.0"  # MIT, a manylinux wheel with a prebuilt library


def _checked(rgb, hole) -> tuple[np.ndarray, np.ndarray]:
    """An RGB uint8 (H, W, 3) photo and its mask of the same size as (H, W) uint8 0/1."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb: got {getattr(rgb, 'dtype', type(rgb).__name__)} "
                         f"{getattr(rgb, 'shape', '')}, expected uint8 (H, W, 3)")
    if not isinstance(hole, np.ndarray) or hole.shape != rgb.shape[:2]:
        raise ValueError(f"hole: got {getattr(hole, 'shape', type(hole).__name__)}, expected a 0/1 "
                         f"array {rgb.shape[:2]}")
    return rgb, read_mask(hole, "hole")  # NaN or out-of-range floats refused, as everywhere


def _fill_batch(fill, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``fill(rgb, hole)`` on each image of a batch of tensors, composited: known pixels come back
    from `image` itself, bit for bit."""
    check_inputs(image, mask)
    return composite(fill_each(fill, image, mask), image, mask)


class Baseline:
    """A classical method as a callable ``(image, mask) -> inpainted image`` on batches of tensors;
    subclasses implement :meth:`_fill` on one uint8 image."""

    name = "baseline"
    cache_outputs = True  # worth keeping on disk (see CachedBaseline): slower to compute than to read

    @property
    def cache_key(self) -> str:
        """Names the method, its settings and the library version: equal keys, equal outputs."""
        raise NotImplementedError

    def _fill(self, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 and (H, W) uint8 0/1 -> (H, W, 3) uint8 (the holes filled)."""
        raise NotImplementedError

    def fill(self, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """One image: RGB uint8 (H, W, 3) and a 0/1 mask (H, W) -> RGB uint8, known pixels kept."""
        rgb, hole = _checked(rgb, hole)
        if not hole.any():
            return rgb.copy()
        out = self._fill(np.ascontiguousarray(rgb), hole)
        return np.where(hole[:, :, None] == 1, out, rgb)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return _fill_batch(self.fill, image, mask)


class OpenCVInpaint(Baseline):
    """``cv2.inpaint``: Telea's fast marching or Navier–Stokes, within ``radius`` pixels."""

    cache_outputs = False  # ~0.02 s at 256 px: a cache would save little and cost 35 kB a pair

    def __init__(self, method: str = "telea", radius: int = 3):
        self.method = check_choice("method", method, sorted(OPENCV_FLAGS))
        self.radius = check_int("radius", radius, 1)
        self.name = f"{BASELINES[method]} (r={radius})"

    def __repr__(self) -> str:
        return f"OpenCVInpaint(method={self.method!r}, radius={self.radius})"

    @property
    def cache_key(self) -> str:
        return f"opencv {cv2.__version__} {self.method} radius={self.radius}"

    def _fill(self, rgb, hole):
        return cv2.inpaint(rgb, hole, self.radius, OPENCV_FLAGS[self.method])


class BiharmonicInpaint(Baseline):
    """scikit-image's ``restoration.inpaint_biharmonic`` on the three channels."""

    name = "Biharmonic"

    def __repr__(self) -> str:
        return "BiharmonicInpaint()"

    @property
    def cache_key(self) -> str:
        import skimage

        return f"scikit-image {skimage.__version__} inpaint_biharmonic"

    def _fill(self, rgb, hole):
        from skimage.restoration import inpaint_biharmonic

        out = inpaint_biharmonic(rgb, hole.astype(bool), channel_axis=-1)  # (H, W, 3) float in [0, 1]
        return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def patchmatch_available() -> bool:
    """True when the ``patchmatch`` module of pypatchmatch imports with its native library."""
    try:
        import patchmatch
    except ImportError:
        return False
    return bool(patchmatch.patchmatch_available)


class PatchMatchInpaint(Baseline):
    """pypatchmatch's ``inpaint``: patches of radius ``patch_size`` ((2p+1)² pixels) copied from
    the known image, the randomised search seeded with ``seed`` so equal inputs give equal outputs."""

    def __init__(self, patch_size: int = 3, seed: int = 0):
        self.patch_size = check_int("patch_size", patch_size, 1)
        check_int("seed", seed, 0)
        if not patchmatch_available():
            raise ImportError(f"patchmatch: the PatchMatch baseline needs the pypatchmatch package "
                              f"with its native library (pip install {PATCHMATCH_PACKAGE}); or leave "
                              "PatchMatch out of the baselines")
        import patchmatch

        self._patchmatch, self.seed = patchmatch, seed
        self.name = f"PatchMatch (p={patch_size})"

    def __repr__(self) -> str:
        return f"PatchMatchInpaint(patch_size={self.patch_size}, seed={self.seed})"

    @property
    def cache_key(self) -> str:
        return f"pypatchmatch {self._patchmatch.__version__} patch_size={self.patch_size} seed={self.seed}"

    def _fill(self, rgb, hole):
        self._patchmatch.set_random_seed(self.seed)  # global in the native library: set every time
        return self._patchmatch.inpaint(rgb, hole, patch_size=self.patch_size)


def make_baseline(name: str, radius: int | None = None, *, patch_size: int | None = None) -> Baseline:
    """The named baseline: "telea" or "ns" (OpenCV; neighbourhood ``radius``, default 3),
    "biharmonic" (no setting), "patchmatch" (patch radius ``patch_size``, default 3)."""
    check_choice("name", name, BASELINES)
    if radius is not None and name not in OPENCV_FLAGS:
        raise ValueError(f"radius: got {radius!r} for {name!r}, expected None (only telea and ns "
                         "have a neighbourhood radius)")
    if patch_size is not None and name != "patchmatch":
        raise ValueError(f"patch_size: got {patch_size!r} for {name!r}, expected None (only "
                         "patchmatch has patches)")
    if name in OPENCV_FLAGS:
        return OpenCVInpaint(name, 3 if radius is None else radius)
    if name == "biharmonic":
        return BiharmonicInpaint()
    return PatchMatchInpaint(3 if patch_size is None else patch_size)


class CachedBaseline:
    """A baseline whose outputs are kept in ``folder``, one file per (method settings and library
    version, input pixels, mask): computed once, read back bit for bit by every later evaluation.

    A file holds the hole pixels and the seconds the method took; ``last_seconds`` is the compute
    time of the images of the last call (as measured when each was computed, read or not).
    """

    def __init__(self, baseline: Baseline, folder):
        if not isinstance(baseline, Baseline):
            raise TypeError(f"baseline: got {type(baseline).__name__}, expected a Baseline "
                            "(see make_baseline)")
        self.baseline, self.folder, self.name = baseline, Path(folder), baseline.name
        self.last_seconds, self.hits, self.misses = 0.0, 0, 0

    def __repr__(self) -> str:
        return f"CachedBaseline({self.baseline!r}, {str(self.folder)!r})"

    def path(self, rgb: np.ndarray, hole: np.ndarray) -> Path:
        digest = hashlib.sha256(self.baseline.cache_key.encode())
        digest.update(repr(rgb.shape).encode())
        digest.update(np.ascontiguousarray(rgb).tobytes())
        digest.update(np.packbits(hole != 0).tobytes())
        key = digest.hexdigest()
        return self.folder / key[:2] / f"{key}.npz"

    def _read(self, path: Path, rgb: np.ndarray, hole: np.ndarray):
        try:
            with np.load(path) as stored:
                pixels, seconds = stored["fill"], float(stored["seconds"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
            return None  # missing or damaged (truncated, bit rot): computed again and rewritten
        if pixels.dtype != np.uint8 or pixels.shape != (int(hole.sum()), 3):
            return None
        out = rgb.copy()
        out[hole] = pixels
        return out, seconds

    def _write(self, path: Path, pixels: np.ndarray, seconds: float) -> None:
        # Atomic: a concurrent or interrupted writer never leaves half a file.
        atomic_write(path, lambda stream: np.savez_compressed(stream, fill=pixels, seconds=np.float64(seconds)))

    def fill(self, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """:meth:`Baseline.fill`, read from the cache when this exact input was filled before."""
        rgb, hole = _checked(rgb, hole)
        hole_bool = hole.astype(bool)
        path = self.path(rgb, hole_bool)
        found = self._read(path, rgb, hole_bool)
        if found is not None:
            out, seconds = found
            self.hits += 1
        else:
            start = time.perf_counter()
            out = self.baseline.fill(rgb, hole)
            seconds = time.perf_counter() - start
            self._write(path, out[hole_bool], seconds)
            self.misses += 1
        self.last_seconds += seconds
        return out

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self.last_seconds = 0.0
        return _fill_batch(self.fill, image, mask)
