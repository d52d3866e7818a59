"""Realism beside fidelity (issue 29): how detailed a fill is, and how easily a classifier tells it
from a real photo. Used by :func:`bidsnet_lib.evaluate.evaluate` (``bidsnet evaluate --realism``);
the protocol and a measured check against the eye are in ``docs/realism.md``.

PSNR and SSIM reward the blurry mean of the plausible fills (Blau & Michaeli, CVPR 2018); an eye
prefers a sharp, plausible one. Two measures that need no pretrained network:

- **Hole sharpness** (:func:`hole_sharpness`): the mean Sobel gradient magnitude of the luminance
  inside the hole, fill over truth, per image (1 = as detailed as the truth, below 1 smoother,
  above 1 busier). Only hole pixels whose 3×3 Sobel window lies in the hole count, so the seam
  between fill and photo is not taken for detail; ``SHARPNESS_FLOOR`` (half a grey level a pixel)
  is added to both means, so a flat truth with a flat fill scores 1, not 0/0.
- **Detectability** (:class:`C2ST`): a two-sample classifier test (Lopez-Paz & Oquab, ICLR 2017).
  A classifier learns to tell hole-centred patches of real photos from the same patches of a
  method's fills, on photos apart from the test photos; its ROC AUC on the test photos' patches is
  the measure: 0.5 = indistinguishable, 1 = every fill told apart.

The C2ST protocol (:class:`C2STProtocol`; fixed so numbers compare across methods and runs):

- **Patches.** ``patch`` = 48 px squares (at the 256 px evaluation, about a fifth of the side:
  enough to take in a fill's texture and its hard edges, few enough to stay mostly in the hole),
  ``per_pair`` = 6 per (photo, mask) pair. Their centres are hole pixels drawn uniformly without
  replacement among those whose patch lies inside the image, from a generator seeded by
  ``(seed, crc32(group label / mask index / photo name))``: the same centres for every method and
  for the real photo, so the real and the filled patches differ only by the fill, and every run
  draws the same. A patch keeps the known pixels it covers (the fill is composited), so a seam
  counts against a method. These settings were not changed after the test photos were scored.
- **Features, not pixels.** Each patch becomes ``len(FEATURES)`` numbers of its luminance and
  chroma: quantiles of the log Sobel magnitude, the share of flat pixels, the same at half
  scale, the Laplacian energy, the BRISQUE statistics of the mean-subtracted contrast-normalised
  coefficients (Mittal et al., 2012: their variance, kurtosis and neighbour products),
  orientation coherence (streaks are coherent), chroma spread: the natural-scene statistics by
  which smears, streaks and blocks differ from photographs.
- **Classifier and training budget.** scikit-learn's L2-regularised logistic regression on
  standardised features (``ridge`` = 1.0, i.e. ``C`` = 1, the bias unpenalised; L-BFGS, at most
  ``iterations`` = 1,000): a convex fit with one optimum, so there is no learning rate, step
  budget or initialisation to fix, and no seed beyond the patches'. One classifier per method,
  trained on the patches of every mask group pooled (real against that method's fills of the
  training photos), scored per group on the test photos.
- **Why not a CNN.** A small CNN on the pixels, trained a fixed number of steps, is the other
  classifier of Lopez-Paz & Oquab. It is not used: on a CPU it costs far more than the fills, its
  AUC depends on the step budget, the initialisation and the thread schedule, and it does not say
  what gives a fill away. Features plus a convex fit take seconds per method and name the
  tell-tale statistics (:meth:`C2ST.weights`). The price: the test sees texture statistics only,
  not wrong content or a repeated object, so its AUC is a lower bound on what a stronger
  classifier (or an eye) finds.
- **Interval.** The AUC of a group over all its test patches (fill = positive class), with a 95 %
  percentile bootstrap interval in which the test *photos* are resampled (all their patches,
  real and filled, together); :func:`detectability_difference` gives a model's AUC minus a
  baseline's with the same resamples (paired).

The training photos must not be the test photos (``bidsnet evaluate --realism-train
data/images/val``); their fills are made by the same methods with the same mask groups.
"""

from __future__ import annotations

import hashlib
import math
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from bidsnet_lib.bootstrap import CONFIDENCE, N_RESAMPLES, bootstrap_interval
from bidsnet_lib.model import check_inputs
from bidsnet_lib.plumbing import (
    REPO_ROOT,
    check_finite_float,
    check_int,
    download_file,
    got_expected,
)

SHARPNESS_FLOOR = 0.5 / 255  # added to both means: a one-level step gives a Sobel magnitude of 0.5/255
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601
FEATURES = ("log |∇| q05", "log |∇| q25", "log |∇| q50", "log |∇| q75", "log |∇| q95", "log |∇| q99",
            "log mean |∇|", "flat share", "log mean |∇| (1/2)", "log |∇| q50 (1/2)", "log mean |Δ|",
            "MSCN variance", "MSCN log kurtosis", "MSCN right product", "MSCN down product",
            "MSCN diagonal product", "coherence", "log luma std", "log Cb std", "log Cr std",
            "log mean |∇ chroma|")
_EPS = 1 / 255
# bench/realism_tradeoff.py's published points (notebook 07), and their format tag.
TRADEOFF = REPO_ROOT / "docs" / "realism" / "tradeoff.json"
TRADEOFF_FORMAT = "bidsnet-realism-tradeoff"


# ----------------------------------------------------------------------------- gradients
def _luma(image: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image * weights).sum(1, keepdim=True)  # (B, 1, H, W)


def _sobel(grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel derivatives / 8 (a unit step gives 0.5), edges replicated: (B, 1, H, W) each."""
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=grey.dtype, device=grey.device) / 8
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kx.view(1, 1, 3, 3))
    gy = F.conv2d(padded, kx.t().contiguous().view(1, 1, 3, 3))
    return gx, gy


def _magnitude(grey: torch.Tensor) -> torch.Tensor:
    gx, gy = _sobel(grey)
    return torch.sqrt(gx * gx + gy * gy)


def hole_sharpness(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean Sobel gradient magnitude of the luminance inside the hole, ``output`` over ``target``
    (each plus ``SHARPNESS_FLOOR``), per image: (B,). 1 = as detailed as the truth.

    Images (B, 3, H, W) in [0, 1], mask (B, 1, H, W) with 1 = hole. Only hole pixels whose 3×3
    window lies in the hole count (all hole pixels where none does); NaN for an image without a hole.
    """
    check_inputs(target, mask)
    if not isinstance(output, torch.Tensor) or output.shape != target.shape:
        raise ValueError(got_expected("output", tuple(getattr(output, "shape", ())) or type(output).__name__,
                                      f"a tensor of the target's shape {tuple(target.shape)}"))
    hole = mask.float()
    inner = 1 - F.max_pool2d(1 - hole, 3, stride=1, padding=1)  # (B, 1, H, W): the whole window in the hole
    use = torch.where(inner.flatten(1).sum(1).view(-1, 1, 1, 1) > 0, inner, hole)
    count = use.flatten(1).sum(1)
    fill = (_magnitude(_luma(output.float())) * use).flatten(1).sum(1) / count.clamp(min=1)
    truth = (_magnitude(_luma(target.float())) * use).flatten(1).sum(1) / count.clamp(min=1)
    ratio = (fill + SHARPNESS_FLOOR) / (truth + SHARPNESS_FLOOR)
    return torch.where(count > 0, ratio, torch.full_like(ratio, math.nan))


# ----------------------------------------------------------------------------- the C2ST protocol
@dataclass(frozen=True)
class C2STProtocol:
    """The detectability test's settings (the module docstring gives the reasons for each)."""

    patch: int = 48  # side of a patch, pixels
    per_pair: int = 6  # patches per (photo, mask) pair
    ridge: float = 1.0  # L2 penalty of the logistic regression on standardised features (C = 1/ridge)
    iterations: int = 1000  # at most this many L-BFGS iterations
    seed: int = 0  # seeds the patch centres

    def __post_init__(self):
        check_int("patch", self.patch, 8)
        check_int("per_pair", self.per_pair, 1)
        check_int("iterations", self.iterations, 1)
        check_finite_float("ridge", self.ridge, 0, low_open=True)
        check_int("seed", self.seed, 0)

    def describe(self) -> str:
        return (f"C2ST: {self.per_pair} patches of {self.patch}x{self.patch} px per pair, centred on hole "
                f"pixels (seed {self.seed}); {len(FEATURES)} gradient/natural-scene features; "
                f"logistic regression (ridge {self.ridge:g}, L-BFGS, <= {self.iterations} iterations)")


def patch_centres(hole: np.ndarray, key: str, protocol: C2STProtocol) -> np.ndarray:
    """``protocol.per_pair`` (y, x) centres among the hole pixels of ``hole`` (H, W) whose patch lies
    inside the image (fewer if the hole has fewer), drawn by a generator seeded by the protocol's
    seed and ``key``: (K, 2) int."""
    hole = np.asarray(hole)
    size = protocol.patch
    if hole.ndim != 2 or min(hole.shape) < size:
        raise ValueError(got_expected("hole", hole.shape, f"an (H, W) mask with sides >= the patch, {size}"))
    half = size // 2
    inside = np.zeros(hole.shape, dtype=bool)
    inside[half: hole.shape[0] - (size - half) + 1, half: hole.shape[1] - (size - half) + 1] = True
    candidates = np.flatnonzero((hole != 0) & inside)
    rng = np.random.default_rng([protocol.seed, zlib.crc32(key.encode())])
    chosen = np.sort(rng.choice(candidates, min(protocol.per_pair, len(candidates)), replace=False))
    return np.stack(np.unravel_index(chosen, hole.shape), axis=1).astype(np.int64)


def cut_patches(image: torch.Tensor, centres: np.ndarray, size: int) -> torch.Tensor:
    """The ``size``-pixel squares of one image (3, H, W) around each (y, x) centre: (K, 3, size, size)."""
    half = size // 2
    return torch.stack([image[:, y - half: y - half + size, x - half: x - half + size]
                        for y, x in centres.tolist()]) if len(centres) else image.new_zeros((0, 3, size, size))


def _gauss(x: torch.Tensor, sigma: float = 7 / 6, radius: int = 3) -> torch.Tensor:
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    g = torch.exp(-t * t / (2 * sigma * sigma))
    g = g / g.sum()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), g.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), g.view(1, 1, -1, 1))


def patch_features(patches: torch.Tensor) -> np.ndarray:
    """The :data:`FEATURES` of each patch (N, 3, P, P) in [0, 1]: (N, len(FEATURES)) float64."""
    if not isinstance(patches, torch.Tensor) or patches.dim() != 4 or patches.shape[1] != 3 \
            or min(patches.shape[-2:]) < 8:
        raise ValueError(got_expected("patches", tuple(getattr(patches, "shape", ())) or type(patches).__name__,
                                      "a tensor (N, 3, P, P) with P >= 8"))
    x = patches.double()
    if not len(x):
        return np.zeros((0, len(FEATURES)))
    y = _luma(x)  # (N, 1, P, P)
    gx, gy = _sobel(y)
    g = torch.sqrt(gx * gx + gy * gy).flatten(1)  # (N, P*P)
    logg = torch.log(g + _EPS)
    q = torch.quantile(logg, torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95, 0.99], dtype=x.dtype), dim=1).t()
    half = _magnitude(F.avg_pool2d(y, 2)).flatten(1)  # (N, P*P/4)
    lap = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"),
                   torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=x.dtype).view(1, 1, 3, 3))
    mu = _gauss(y)
    sigma = torch.sqrt((_gauss(y * y) - mu * mu).clamp(min=0))
    mscn = ((y - mu) / (sigma + _EPS))[:, 0]  # (N, P, P)
    flat = mscn.flatten(1)
    var = flat.var(1)
    kurt = ((flat - flat.mean(1, keepdim=True)) ** 4).mean(1) / (var * var + 1e-12)
    right = (mscn[:, :, :-1] * mscn[:, :, 1:]).flatten(1).mean(1)
    down = (mscn[:, :-1] * mscn[:, 1:]).flatten(1).mean(1)
    diag = (mscn[:, :-1, :-1] * mscn[:, 1:, 1:]).flatten(1).mean(1)
    jxx, jxy, jyy = _gauss(gx * gx), _gauss(gx * gy), _gauss(gy * gy)
    trace = (jxx + jyy).flatten(1)
    gap = torch.sqrt((jxx - jyy) ** 2 + 4 * jxy * jxy).flatten(1)
    coherence = (gap.sum(1) + 1e-12) / (trace.sum(1) + 1e-12)  # energy-weighted mean (λ1-λ2)/(λ1+λ2)
    cb = (x[:, 2] - y[:, 0]) * 0.564
    cr = (x[:, 0] - y[:, 0]) * 0.713
    chroma = (_magnitude(cb[:, None]) + _magnitude(cr[:, None])).flatten(1)
    columns = [*q.unbind(1), torch.log(g.mean(1) + _EPS), (g < _EPS).double().mean(1),
               torch.log(half.mean(1) + _EPS), torch.log(half.median(1).values + _EPS),
               torch.log(lap.abs().flatten(1).mean(1) + _EPS), var, torch.log(kurt + 1e-6), right, down, diag,
               coherence, torch.log(y.flatten(1).std(1) + _EPS), torch.log(cb.flatten(1).std(1) + _EPS),
               torch.log(cr.flatten(1).std(1) + _EPS), torch.log(chroma.mean(1) + _EPS)]
    return torch.stack(columns, dim=1).numpy()  # (N, len(FEATURES))


# ----------------------------------------------------------------------------- classifier and AUC
def _pair_counts(scores: np.ndarray, labels: np.ndarray, owners: np.ndarray, n_owners: int) -> tuple:
    """C[p, q]: (fill patches of photo p) x (real patches of photo q) ordered right (ties 1/2);
    the number of fill and real patches of each photo."""
    fill, real = labels == 1, labels == 0
    s_fill, s_real = scores[fill], scores[real]
    order = np.argsort(s_real, kind="stable")
    sorted_real, real_owner = s_real[order], owners[real][order]
    counts = np.zeros((n_owners, n_owners))
    below = np.searchsorted(sorted_real, s_fill, side="left")
    tied_end = np.searchsorted(sorted_real, s_fill, side="right")
    # cumulative counts of each photo's real patches along the sorted scores
    cum = np.zeros((len(sorted_real) + 1, n_owners))
    cum[np.arange(1, len(sorted_real) + 1), real_owner] = 1
    cum = cum.cumsum(0)
    contribution = cum[below] + 0.5 * (cum[tied_end] - cum[below])  # (n_fill, n_owners)
    np.add.at(counts, owners[fill], contribution)
    return counts, np.bincount(owners[fill], minlength=n_owners), np.bincount(owners[real], minlength=n_owners)


def _auc_of(weights: np.ndarray, counts: np.ndarray, n_fill: np.ndarray, n_real: np.ndarray) -> np.ndarray:
    """AUC for each row of photo weights (R, P) (bootstrap counts; ones = the sample itself)."""
    top = np.einsum("rp,pq,rq->r", weights, counts, weights)
    return top / ((weights @ n_fill) * (weights @ n_real))


def _resamples(n_photos: int, n_resamples: int, seed: int) -> np.ndarray:
    """(R, P) how often each photo is drawn in each bootstrap resample."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(n_photos, size=(n_resamples, n_photos))
    return np.stack([np.bincount(d, minlength=n_photos) for d in draws]).astype(np.float64)


def _interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


class C2ST:
    """One method's detectability test: a logistic regression on :func:`patch_features`, fitted to
    tell real patches (0) from filled ones (1); :meth:`auc` scores held-out patches."""

    def __init__(self, protocol: C2STProtocol | None = None):
        protocol = C2STProtocol() if protocol is None else protocol
        if not isinstance(protocol, C2STProtocol):
            raise TypeError(f"protocol: got {type(protocol).__name__}, expected a C2STProtocol or None")
        self.protocol, self.model = protocol, None

    def fit(self, real: np.ndarray, fill: np.ndarray) -> C2ST:
        """Fit on features (N, len(FEATURES)) of real and of filled patches."""
        for name, x in (("real", real), ("fill", fill)):
            if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != len(FEATURES) or not len(x):
                raise ValueError(got_expected(name, getattr(x, "shape", type(x).__name__),
                                              f"features (N, {len(FEATURES)}) with N >= 1 (patch_features)"))
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = np.concatenate([real, fill])
        t = np.concatenate([np.zeros(len(real)), np.ones(len(fill))])
        # C = 1/ridge: sklearn minimises C * (sum of log losses) + |w|^2 / 2, the bias unpenalised
        self.model = make_pipeline(StandardScaler(), LogisticRegression(
            C=1 / self.protocol.ridge, max_iter=self.protocol.iterations)).fit(x, t)
        return self

    def decision(self, features: np.ndarray) -> np.ndarray:
        """How much like a fill each patch looks (the logit): (N,)."""
        if self.model is None:
            raise ValueError("C2ST: got an unfitted test, expected fit(real, fill) first")
        return self.model.decision_function(np.asarray(features, dtype=np.float64))

    def auc(self, real: np.ndarray, fill: np.ndarray) -> float:
        """The AUC of held-out real and filled patches' features (0.5 = indistinguishable)."""
        from sklearn.metrics import roc_auc_score

        scores = np.concatenate([self.decision(real), self.decision(fill)])
        return float(roc_auc_score(np.concatenate([np.zeros(len(real)), np.ones(len(fill))]), scores))

    def weights(self) -> dict[str, float]:
        """Each feature's weight (on the standardised feature): what gives a fill away."""
        if self.model is None:
            raise ValueError("C2ST: got an unfitted test, expected fit(real, fill) first")
        return dict(zip(FEATURES, self.model[-1].coef_[0].tolist(), strict=True))


@dataclass
class Detectability:
    """A C2ST's AUC on test patches with its bootstrap interval over photos, and each photo's own AUC
    (its filled patches against its real ones)."""

    auc: float
    ci_low: float
    ci_high: float
    per_photo: dict[str, float]
    _counts: tuple = field(repr=False, default=())  # (pair counts (P, P), fill and real patches per photo)
    _seed: tuple = field(repr=False, default=())  # (n_resamples, seed) of the interval


def detectability(scores, labels, photos, *, n_resamples: int = N_RESAMPLES, seed: int = 0) -> Detectability:
    """The AUC of C2ST ``scores`` for ``labels`` (1 = fill) with its percentile bootstrap interval,
    the photos resampled (``photos``: each patch's photo; a photo's real and filled patches are
    drawn together)."""
    scores, labels, photos = np.asarray(scores, np.float64), np.asarray(labels), np.asarray(photos)
    if not (scores.ndim == 1 and labels.shape == scores.shape == photos.shape) or not len(scores) \
            or not np.isin(labels, (0, 1)).all() or len(np.unique(labels)) < 2:
        raise ValueError(got_expected("scores, labels, photos", (scores.shape, labels.shape, photos.shape),
                                      "equally long 1-D arrays, labels in {0, 1} with both present"))
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(got_expected("n_resamples", n_resamples, "an int >= 1"))
    names, owners = np.unique(photos, return_inverse=True)
    counts = _pair_counts(scores, labels.astype(int), owners, len(names))
    with np.errstate(invalid="ignore", divide="ignore"):  # a photo without patches of a class: NaN
        value = _auc_of(np.ones((1, len(names))), *counts)[0]
        per_photo = _auc_of(np.eye(len(names)), *counts)
        low, high = _interval(_auc_of(_resamples(len(names), n_resamples, seed), *counts)) \
            if len(names) > 1 else (math.nan, math.nan)
    return Detectability(float(value), low, high, dict(zip(names.tolist(), per_photo.tolist(), strict=True)),
                         counts, (n_resamples, seed))


def detectability_difference(model: Detectability, baseline: Detectability) -> dict:
    """The model's AUC minus the baseline's on the same photos, with the interval of the same photo
    resamples for both (paired): ``{"diff", "ci_low", "ci_high", "wins", "beats", "n_photos"}``;
    ``wins``: the share of photos on which the model's own AUC is lower; ``beats``: the whole
    interval below zero (the model's fills are harder to tell from photos)."""
    for name, x in (("model", model), ("baseline", baseline)):
        if not isinstance(x, Detectability):
            raise TypeError(f"{name}: got {type(x).__name__}, expected a Detectability (from detectability())")
    if list(model.per_photo) != list(baseline.per_photo) or model._seed != baseline._seed:
        raise ValueError(got_expected("model, baseline photos", [list(model.per_photo), list(baseline.per_photo)],
                                      "two detectability() results on the same photos and settings"))
    n = len(model.per_photo)
    weights = _resamples(n, *model._seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        low, high = _interval(_auc_of(weights, *model._counts) - _auc_of(weights, *baseline._counts)) \
            if n > 1 else (math.nan, math.nan)
    m, b = np.array(list(model.per_photo.values())), np.array(list(baseline.per_photo.values()))
    return {"diff": model.auc - baseline.auc, "ci_low": low, "ci_high": high, "wins": float(np.mean(m < b)),
            "beats": bool(high < 0), "n_photos": n}


# ----------------------------------------------------------------------------- inside evaluate()
def _photo_means(values: list[tuple[str, float]], names: list[str]) -> list[float]:
    means = []
    for name in names:
        v = np.array([x for p, x in values if p == name], dtype=np.float64)
        v = v[~np.isnan(v)]
        means.append(float(v.mean()) if len(v) else math.nan)
    return means


def _check_photos(photos, name: str) -> dict[str, np.ndarray]:
    if not isinstance(photos, Mapping) or not photos:
        raise ValueError(f"{name}: got {type(photos).__name__}, expected a non-empty dict {{name: RGB uint8 (H, W, 3)}}")
    for key, im in photos.items():
        if not isinstance(im, np.ndarray) or im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
            raise ValueError(got_expected(f"{name}[{key!r}]", getattr(im, "shape", type(im).__name__),
                                          "an RGB uint8 array (H, W, 3)"))
    return dict(photos)


class RealismCheck:
    """What :func:`bidsnet_lib.evaluate.evaluate` needs for hole sharpness and detectability: the
    photos each method's C2ST is trained on (never the test photos) and its protocol.

    ``evaluate(..., realism=RealismCheck(load_photos("data/images/val", 256), source="data/images/val"))``;
    ``source`` names the training photos in the tables. evaluate() calls :meth:`start`,
    :meth:`observe` for every batch of test pairs and method, and :meth:`finish`.
    """

    def __init__(self, train_photos: Mapping[str, np.ndarray], protocol: C2STProtocol | None = None,
                 source: str = "training photos"):
        self.train_photos = _check_photos(train_photos, "train_photos")
        self.protocol = C2STProtocol() if protocol is None else protocol
        if not isinstance(self.protocol, C2STProtocol):
            raise TypeError(f"protocol: got {type(protocol).__name__}, expected a C2STProtocol or None")
        small = [k for k, im in self.train_photos.items() if min(im.shape[:2]) < self.protocol.patch]
        if small:
            raise ValueError(got_expected(f"train_photos[{small[0]!r}]", self.train_photos[small[0]].shape,
                                          f"sides >= the C2ST patch, {self.protocol.patch} px"))
        self.source = str(source)
        self.start({})

    def start(self, photos: Mapping[str, np.ndarray]) -> None:
        """Forget earlier test pairs; refuse test ``photos`` that hold a training photo."""
        seen = {hashlib.sha256(im.tobytes()).digest(): k for k, im in self.train_photos.items()}
        for key, im in photos.items():
            twin = seen.get(hashlib.sha256(np.ascontiguousarray(im).tobytes()).digest())
            if twin is not None:
                raise ValueError(got_expected("realism training photo", twin, f"none of the test photos (it is "
                                              f"test photo {key!r}); train on other photos, e.g. data/images/val"))
        self._real: dict[str, dict] = {}  # group label -> {(photo, mask index): real patches' features}
        self._fill: dict[str, dict] = {}  # group label -> method -> {(photo, mask index): features}
        self._sharp: dict[str, dict] = {}  # group label -> method -> [(photo, sharpness)]
        self.summary: dict = {}
        self.results: dict[tuple[str, str], Detectability] = {}  # (group label, method) -> AUC

    def _features(self, label: str, keys: Sequence[tuple[str, int]], images: torch.Tensor,
                  holes: np.ndarray) -> dict:
        out = {}
        for (photo, m), image, hole in zip(keys, images, holes, strict=True):
            centres = patch_centres(hole, f"{label}/{m}/{photo}", self.protocol)
            out[(photo, m)] = patch_features(cut_patches(image, centres, self.protocol.patch))
        return out

    def observe(self, label: str, keys: Sequence[tuple[str, int]], method: str, target: torch.Tensor,
                output: torch.Tensor, mask: torch.Tensor) -> None:
        """Record a batch of test pairs ``keys`` = [(photo, mask index)] of group ``label``: the
        sharpness of ``method``'s composited ``output`` and its patches (the real ones once)."""
        holes = mask[:, 0].cpu().numpy()
        real = self._real.setdefault(label, {})
        missing = [i for i, k in enumerate(keys) if k not in real]
        if missing:
            real.update(self._features(label, [keys[i] for i in missing], target[missing].cpu(), holes[missing]))
        self._fill.setdefault(label, {}).setdefault(method, {}).update(
            self._features(label, keys, output.cpu(), holes))
        values = hole_sharpness(output, target, mask).tolist()
        self._sharp.setdefault(label, {}).setdefault(method, []).extend(
            (p, v) for (p, _), v in zip(keys, values, strict=True))

    def _train(self, methods: Mapping[str, Callable], groups: Sequence, batch_size: int, progress: bool) -> dict:
        """Each method's C2ST, fitted on its fills of the training photos with every group's masks."""
        from tqdm.auto import tqdm

        from bidsnet_lib.evaluate.inputs import fit_mask
        from bidsnet_lib.model import composite

        names = list(self.train_photos)
        real, fills = [], {name: [] for name in methods}
        seconds = dict.fromkeys(methods, 0.0)
        total = sum(len(g.masks) for g in groups) * len(names)
        with tqdm(total=total, unit="pair", desc="realism: C2ST training fills", disable=not progress) as bar:
            for group in groups:
                for m, source in enumerate(group.masks):
                    for start in range(0, len(names), batch_size):
                        chunk = names[start: start + batch_size]
                        for shape in sorted({self.train_photos[p].shape for p in chunk}):
                            batch = [p for p in chunk if self.train_photos[p].shape == shape]
                            holes = np.repeat(fit_mask(source, shape[:2])[None], len(batch), 0)  # (B, H, W)
                            target = torch.from_numpy(np.stack([self.train_photos[p] for p in batch]))
                            target = target.permute(0, 3, 1, 2).float() / 255  # (B, 3, H, W)
                            mask = torch.from_numpy(holes).float()[:, None]  # (B, 1, H, W)
                            keys = [(p, m) for p in batch]
                            real.append(self._features(group.label, keys, target, holes))
                            for name, method in methods.items():
                                begin = time.perf_counter()
                                out = method(target, mask)
                                # as evaluate() scores the test fills: composited, rounded to 8 bits
                                out = composite((out.detach().float().clamp(0, 1) * 255).round() / 255, target, mask)
                                fills[name].append(self._features(group.label, keys, out, holes))
                                seconds[name] += time.perf_counter() - begin
                            bar.update(len(batch))
        real_x = np.concatenate([x for d in real for x in d.values()])
        if not len(real_x):
            raise ValueError(got_expected("realism training patches", 0, f"some: training photos and holes that "
                                          f"fit {self.protocol.patch} px patches around hole pixels"))
        tests = {}
        for name in methods:
            begin = time.perf_counter()
            tests[name] = C2ST(self.protocol).fit(real_x, np.concatenate([x for d in fills[name] for x in d.values()]))
            seconds[name] += time.perf_counter() - begin
        self.summary.update({"train_seconds": seconds, "train_patches": len(real_x)})
        return tests

    def finish(self, methods: Mapping[str, Callable], groups: Sequence, rows: Sequence[dict], *,
               baselines: Sequence[str] = (), batch_size: int = 16, seed: int = 0,
               n_resamples: int = N_RESAMPLES, progress: bool = True) -> tuple[list[dict], list[dict], list[dict]]:
        """After every test pair was observed: train each method's C2ST and score it per group.
        Returns (rows, per-photo rows, comparisons of each model with each baseline) in
        :mod:`.results`' formats; ``rows``, the evaluation's so far, give each group's common columns."""
        tests = self._train(methods, groups, batch_size, progress)
        common = {}
        for row in rows:
            common.setdefault((row["set"], row["group"]),
                              {k: row[k] for k in ("set", "group", "hole_ratio", "n", "n_photos")})
        new_rows, per_photo, comparisons = [], [], []
        for group in groups:
            label, base = group.label, common[(group.set_name, group.name)]
            real = self._real[label]
            keys = list(real)
            names = list(dict.fromkeys(p for p, _ in keys))
            owners = np.array([p for k in keys for p in [k[0]] * len(real[k])])
            real_x = np.concatenate([real[k] for k in keys])
            for name in methods:
                fill_x = np.concatenate([self._fill[label][name][k] for k in keys])
                row = {**base, "method": name, "metric": "detectability", "value": math.nan, "ci_low": math.nan,
                       "ci_high": math.nan, "std": math.nan,
                       "note": f"{len(real_x)} real and {len(fill_x)} filled test patches"}
                if len(real_x):  # none where no patch fits around the holes
                    scores = np.concatenate([tests[name].decision(real_x), tests[name].decision(fill_x)])
                    labels = np.concatenate([np.zeros(len(real_x)), np.ones(len(fill_x))])
                    found = detectability(scores, labels, np.concatenate([owners, owners]),
                                          n_resamples=n_resamples, seed=seed)
                    self.results[(label, name)] = found
                    row.update(value=found.auc, ci_low=found.ci_low, ci_high=found.ci_high)
                new_rows.append(row)
                pairs = self._sharp[label][name]
                means = _photo_means(pairs, names)
                low, high = bootstrap_interval(means, n_resamples=n_resamples, seed=seed)
                new_rows.append({**base, "method": name, "metric": "sharpness", "value": float(np.nanmean(means)),
                                 "ci_low": low, "ci_high": high,
                                 "std": float(np.nanstd(np.array([v for _, v in pairs]))), "note": ""})
                per_photo += [{"set": group.set_name, "group": group.name, "photo": p, "method": name,
                               "metric": "sharpness", "value": v, "n_masks": len(group.masks)}
                              for p, v in zip(names, means, strict=True)]
            present = [b for b in baselines if (label, b) in self.results]
            best = min(present, key=lambda b: self.results[(label, b)].auc) if present else None
            for model in (m for m in methods if m not in baselines and (label, m) in self.results):
                for b in present:
                    diff = detectability_difference(self.results[(label, model)], self.results[(label, b)])
                    comparisons.append({"set": group.set_name, "group": group.name, "model": model, "baseline": b,
                                        "metric": "detectability", **diff, "best": b == best})
        self.summary.update({"protocol": self.protocol.describe(), "source": self.source,
                             "train_photos": len(self.train_photos),
                             "weights": {name: t.weights() for name, t in tests.items()}})
        return new_rows, per_photo, comparisons


def realism_markdown(result) -> list[str]:
    """The realism section of an :class:`EvalResult`'s tables: per group and method, detectability
    and hole sharpness with their intervals, then each model minus each baseline in AUC."""
    summary = result.realism
    cells = {(r["set"], r["group"], r["method"], r["metric"]): r for r in result.rows}
    confidence = f"{100 * CONFIDENCE:g} %"
    lines = [f"**Realism.** Detectability: the AUC of a two-sample classifier test (C2ST) telling "
             f"real from filled patches (0.5 = indistinguishable, 1 = every fill told apart), trained "
             f"per method on its fills of {summary['train_photos']} photos of {summary['source']} "
             f"({summary['train_patches']} real and as many filled patches), scored on the test photos; "
             f"[brackets]: {confidence} bootstrap interval, the test photos resampled. "
             f"{summary['protocol']}. Hole sharpness: mean Sobel gradient magnitude inside the hole, "
             f"fill over truth (1 = as detailed as the truth), mean over photos [{confidence} interval].",
             "",
             "| Set | Group | Method | Detectability (C2ST AUC) ↓ | Hole sharpness (→ 1) | C2ST s (training fills + fit) |",
             "|---|---|---|---:|---:|---:|"]
    for set_name, group, _, _ in result.groups:
        for method in result.methods:
            texts = []
            for metric, fmt in (("detectability", "{:.3f}"), ("sharpness", "{:.2f}")):
                row = cells.get((set_name, group, method, metric))
                if row is None or math.isnan(row["value"]):
                    texts.append("—")
                    continue
                text = fmt.format(row["value"])
                if not math.isnan(row["ci_low"]):
                    text += f" [{fmt.format(row['ci_low'])}, {fmt.format(row['ci_high'])}]"
                texts.append(text)
            seconds = summary.get("train_seconds", {}).get(method, math.nan)
            lines.append(f"| {set_name} | {group} | {method} | {texts[0]} | {texts[1]} | "
                         f"{'—' if math.isnan(seconds) else f'{seconds:.0f}'} |")
    compared = [c for c in result.comparisons if c["metric"] == "detectability"]
    if compared:
        lines += ["", f"**Detectability, model minus baseline** (paired: the same photo resamples): "
                      f"ΔAUC [{confidence} interval]; ✓ when the whole interval is below zero (the model's "
                      "fills are harder to tell apart); † the group's least detectable baseline.", "",
                  "| Set | Group | Model | Baseline | ΔAUC |", "|---|---|---|---|---:|"]
        for c in compared:
            lines.append(f"| {c['set']} | {c['group']} | {c['model']} | {c['baseline']} | {c['diff']:+.3f} "
                         f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]{' ✓' if c['beats'] else ''}"
                         f"{' †' if c['best'] else ''} |")
    return lines


# ----------------------------------------------------------------------------- the trade-off
def tradeoff_points(rows: Sequence[dict], baselines: Sequence[str],
                    groups: Sequence[tuple[str, str]] | None = None) -> list[dict]:
    """Fidelity against realism per method, from the rows of ``bidsnet evaluate --realism``:
    ``delta_psnr`` (its PSNR minus the best baseline's in each group), ``detectability`` (C2ST
    AUC) and ``sharpness``, each the mean over ``groups`` ((set, group) pairs; None: every group
    with detectability rows). A baseline's own ``delta_psnr`` is <= 0 (0 for the best)."""
    cells = {(r["set"], r["group"], r["method"], r["metric"]): r["value"] for r in rows}
    scored = [(s, g) for s, g, _, metric in cells if metric == "detectability"]
    chosen = list(dict.fromkeys(scored)) if groups is None else [tuple(g) for g in groups]
    missing = [g for g in chosen if g not in set(scored)]
    if missing or not chosen:
        raise ValueError(got_expected("groups", missing or chosen, f"groups scored with --realism, among {sorted(set(scored))}"))
    methods = list(dict.fromkeys(m for (_, _, m, metric) in cells if metric == "detectability"))
    unknown = [b for b in baselines if b not in methods]
    if unknown or not baselines:
        raise ValueError(got_expected("baselines", list(baselines), f"one or more of the methods scored, {methods}"))
    points = []
    for method in methods:
        deltas = [cells[(s, g, method, "psnr")] - max(cells[(s, g, b, "psnr")] for b in baselines) for s, g in chosen]
        points.append({"method": method, "baseline": method in baselines, "groups": len(chosen),
                       "delta_psnr": float(np.mean(deltas)),
                       **{metric: float(np.mean([cells[(s, g, method, metric)] for s, g in chosen]))
                          for metric in ("detectability", "sharpness")}})
    return points


def plot_tradeoff(points: Sequence[dict], ax=None):
    """ΔPSNR over the best baseline (up: more faithful) against detectability (left: harder to tell
    from a photo), one labelled point per method; the models joined in the order given. Returns the axes."""
    if ax is None:
        from matplotlib.figure import Figure  # no pyplot: headless, no global state

        ax = Figure(figsize=(6.0, 4.2), layout="constrained").subplots()
    models = [p for p in points if not p["baseline"]]
    ax.plot([p["detectability"] for p in models], [p["delta_psnr"] for p in models], "-o", color="C0", label="models")
    for p in points:
        if p["baseline"]:
            ax.plot(p["detectability"], p["delta_psnr"], "s", color="0.4")
        ax.annotate(p["method"], (p["detectability"], p["delta_psnr"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvline(0.5, color="0.6", lw=0.8, ls=":")  # a fill no classifier tells from a photo
    ax.set_xlabel("detectability (C2ST AUC; 0.5 = indistinguishable) ← more realistic")
    ax.set_ylabel("PSNR minus the best baseline (dB) ↑")
    ax.grid(alpha=0.3)
    return ax


def load_tradeoff(path=None, download_to="runs/published") -> dict:
    """The fidelity-realism points ``bench/realism_tradeoff.py`` wrote (``tradeoff.json``): ``path``,
    else the published ``docs/realism/tradeoff.json`` of a checkout, else (a bare install, Colab)
    that file downloaded from the repository into ``download_to``."""
    import json
    from pathlib import Path

    from bidsnet_lib.colab import published_url

    if path is None:
        path = TRADEOFF
        if not path.is_file():
            path = Path(download_to) / TRADEOFF.name
            if not path.is_file():
                download_file(published_url("docs/realism/tradeoff.json"), path, "the published realism trade-off",
                              progress=False)
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(got_expected(str(path), f"text that is not JSON ({error})",
                                      f"a {TRADEOFF_FORMAT!r} file written by bench/realism_tradeoff.py")) from None
    if not isinstance(data, dict) or data.get("format") != TRADEOFF_FORMAT or not data.get("points"):
        raise ValueError(got_expected(str(path), data.get("format") if isinstance(data, dict) else type(data).__name__,
                                      f"a {TRADEOFF_FORMAT!r} file with points, written by bench/realism_tradeoff.py"))
    return data
