"""FID (Heusel et al. 2017): the Fréchet distance between Gaussians fitted to the features of
two image sets, with FID's Inception-v3.

Taught in ``notebooks/07_evaluation.ipynb``. Images are float tensors (B, 3, H, W) in [0, 1] or
uint8 arrays (H, W, 3) / (B, H, W, 3), as in :mod:`bidsnet_lib.metrics`. :func:`compute_fid` and
:class:`FIDMetric` compare two *sets* of images; papers compute them on the composited output
(known pixels kept), and so should callers.

The Inception-v3 weights (:data:`FID_WEIGHTS_FILE`) come from torch.hub's cache or a file the
caller names, or are downloaded when the host answers within seconds; otherwise they fail at once
naming the file to place and where. FID never uses a random Inception; any other feature
extractor is labelled as not comparable to published numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bidsnet_lib.metrics import to_image_batch
from bidsnet_lib.plumbing import check_int, check_positive_int, fetch_weights

# ----------------------------------------------------------------------------------------------
# The Fréchet distance between Gaussians fitted to features


def _sqrt_psd(sigma: np.ndarray, name: str) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix via its eigendecomposition."""
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    tol = 1e-8 * max(1.0, float(np.abs(w).max()))
    if w.min() < -tol:
        raise ValueError(f"{name}: not positive semi-definite (smallest eigenvalue {w.min():.3g})")
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """d² = |μ1 - μ2|² + tr Σ1 + tr Σ2 - 2 tr (Σ1 Σ2)^½ between N(μ1, Σ1) and N(μ2, Σ2).

    tr (Σ1 Σ2)^½ is taken as Σ √λ over the eigenvalues λ of the symmetric PSD matrix
    √Σ1 Σ2 √Σ1, which has the same eigenvalues as Σ1 Σ2. Only symmetric eigendecompositions are
    needed, so the result is real and finite even for singular covariances (fewer images than
    feature dimensions), where ``scipy.linalg.sqrtm(Σ1 Σ2)`` of the non-symmetric product returns
    complex noise or fails and needs an ε·I offset that changes the answer.
    """
    arrays = []
    for name, a, ndim in (("mu1", mu1, 1), ("sigma1", sigma1, 2), ("mu2", mu2, 1),
                          ("sigma2", sigma2, 2)):
        a = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
        if a.ndim != ndim or not np.isfinite(a).all():
            raise ValueError(f"{name}: got shape {a.shape}, expected a finite "
                             f"{'vector (D,)' if ndim == 1 else 'matrix (D, D)'}")
        arrays.append(a)
    mu1, sigma1, mu2, sigma2 = arrays
    d = mu1.shape[0]
    for name, a, shape in (("mu2", mu2, (d,)), ("sigma1", sigma1, (d, d)), ("sigma2", sigma2, (d, d))):
        if a.shape != shape:
            raise ValueError(f"{name}: got shape {a.shape}, expected {shape} to match mu1")
    root1 = _sqrt_psd(sigma1, "sigma1")
    _sqrt_psd(sigma2, "sigma2")  # validates sigma2 as a covariance
    middle = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), N >= 2, in float64."""
    f = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor) else features,
                   dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features: got shape {f.shape}, expected (N, D) with N >= 2")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


# ----------------------------------------------------------------------------------------------
# FID's Inception-v3: TensorFlow's 2015 graph in torchvision modules


FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
# TensorFlow's 2015 Inception graph ported to PyTorch; the file pytorch-fid and torchmetrics use.
FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   + FID_WEIGHTS_FILE)
# Below the feature dimension the covariance is singular; FID is also biased upwards for small N
# (Chong & Forsyth 2020), so numbers are comparable only at equal N. Papers use 10k-50k images.
FID_MIN_IMAGES = 2048


class FIDSampleSizeWarning(UserWarning):
    """FID computed from too few images to be meaningful."""


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's 3x3 average pool divides by the number of real pixels, not the zero padding.
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _chain(x: torch.Tensor, *modules: nn.Module) -> torch.Tensor:
    for m in modules:
        x = m(x)
    return x


def _fid_blocks():
    from torchvision.models.inception import InceptionA, InceptionC, InceptionE

    class FIDInceptionA(InceptionA):
        def forward(self, x):
            return torch.cat([
                self.branch1x1(x),
                _chain(x, self.branch5x5_1, self.branch5x5_2),
                _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
                self.branch_pool(_tf_avg_pool(x)),
            ], dim=1)

    class FIDInceptionC(InceptionC):
        def forward(self, x):
            return torch.cat([
                self.branch1x1(x),
                _chain(x, self.branch7x7_1, self.branch7x7_2, self.branch7x7_3),
                _chain(x, self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                       self.branch7x7dbl_4, self.branch7x7dbl_5),
                self.branch_pool(_tf_avg_pool(x)),
            ], dim=1)

    class FIDInceptionE(InceptionE):
        def __init__(self, in_channels: int, max_pool: bool):
            super().__init__(in_channels)
            self.max_pool = max_pool

        def forward(self, x):
            b3 = self.branch3x3_1(x)
            dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            # The TF graph's last block max-pools where the paper's Inception average-pools.
            pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
            return torch.cat([
                self.branch1x1(x),
                self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl),
                self.branch_pool(pooled),
            ], dim=1)

    return FIDInceptionA, FIDInceptionC, FIDInceptionE


class FIDInceptionV3(nn.Module):
    """FID's Inception-v3 feature extractor: images (B, 3, H, W) in [0, 1] -> pool3 (B, 2048).

    torchvision's Inception3 with TensorFlow's pooling in the mixed blocks and 1008 classes, so
    that the TF-ported weights (``FID_WEIGHTS_FILE``) load exactly; inputs are resized to 299×299
    (bilinear) and scaled to [-1, 1] as pytorch-fid does. Build it with :func:`load_fid_inception`;
    constructed directly its weights are random (for tests only).
    """

    name = "Inception-v3 pool3 (TF FID weights)"
    comparable = True
    feature_dim = 2048

    def __init__(self):
        super().__init__()
        from torchvision.models import inception_v3

        block_a, block_c, block_e = _fid_blocks()
        net = inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
        net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = (
            block_a(192, 32), block_a(256, 64), block_a(288, 64))
        net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e = (
            block_c(768, 128), block_c(768, 160), block_c(768, 160), block_c(768, 192))
        net.Mixed_7b, net.Mixed_7c = block_e(1280, max_pool=False), block_e(2048, max_pool=True)
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1  # (B, 3, 299, 299) in [-1, 1]
        x = _chain(x, n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3, n.maxpool1,
                   n.Conv2d_3b_1x1, n.Conv2d_4a_3x3, n.maxpool2)  # (B, 192, 35, 35)
        x = _chain(x, n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a, n.Mixed_6b, n.Mixed_6c,
                   n.Mixed_6d, n.Mixed_6e)  # (B, 768, 17, 17)
        x = _chain(x, n.Mixed_7a, n.Mixed_7b, n.Mixed_7c)  # (B, 2048, 8, 8)
        return x.mean(dim=(2, 3))  # (B, 2048)


def load_fid_inception(weights_path=None, *, download: bool = True,
                       device: torch.device | str | None = None) -> FIDInceptionV3:
    """FID's Inception-v3 with the TF-ported weights from ``weights_path``, the cache or a download.

    Offline without the file it raises FileNotFoundError naming ``FID_WEIGHTS_FILE`` and where to
    put it; it never returns a randomly initialised Inception.
    """
    state, source = fetch_weights(FID_WEIGHTS_FILE, FID_WEIGHTS_URL, "FID's Inception-v3",
                                  weights_path, download,
                                  alternative=" (weights_path=...); FID never uses a random Inception")
    model = FIDInceptionV3()
    try:
        model.net.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"{source}: not the FID Inception-v3 state dict ({error})") from None
    model.eval().requires_grad_(False)
    return model.to(device) if device is not None else model


# ----------------------------------------------------------------------------------------------
# FID of two image sets


@dataclass(frozen=True)
class FIDResult:
    """An FID value with what a table must state next to it."""

    fid: float
    n_real: int
    n_fake: int
    feature_dim: int
    extractor: str
    comparable: bool  # features of the published FID network?
    min_images: int = FID_MIN_IMAGES

    @property
    def label(self) -> str:
        notes = [f"{self.n_real} real / {self.n_fake} generated images"]
        if min(self.n_real, self.n_fake) < self.min_images:
            notes.append(f"fewer than {self.min_images}: biased, compare only at equal N")
        if not self.comparable:
            notes.append("NOT comparable to published FID")
        return f"FID ({self.extractor}; {'; '.join(notes)})"

    def __float__(self) -> float:
        return self.fid


FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]


class FIDMetric:
    """Accumulates features of real and generated images; ``compute()`` gives an FIDResult.

    ``feature_extractor`` maps images (B, 3, H, W) in [0, 1] to features (B, D); its optional
    attributes ``name`` and ``comparable`` (default False: only the published Inception is
    comparable) go into the result. None loads :func:`load_fid_inception`.
    """

    def __init__(self, feature_extractor: FeatureExtractor | None = None, *,
                 min_images: int = FID_MIN_IMAGES, device: torch.device | str | None = None):
        if feature_extractor is None:
            feature_extractor = load_fid_inception(device=device)
        elif not callable(feature_extractor):
            raise TypeError(f"feature_extractor: got {type(feature_extractor).__name__}, "
                            "expected a callable images (B, 3, H, W) -> features (B, D)")
        if isinstance(feature_extractor, nn.Module) and device is not None:
            feature_extractor = feature_extractor.to(device)
        check_int("min_images", min_images, 2)
        self.extractor = feature_extractor
        self.name = getattr(feature_extractor, "name", type(feature_extractor).__name__)
        self.comparable = bool(getattr(feature_extractor, "comparable", False))
        self.min_images, self.device = min_images, device
        self.reset()

    def reset(self) -> None:
        self._features: dict[str, list[np.ndarray]] = {"real": [], "fake": []}

    def _extract(self, images, name: str) -> np.ndarray:
        x = to_image_batch(images, name)
        if self.device is not None:
            x = x.to(self.device)
        with torch.no_grad():
            f = self.extractor(x.float())
        if not isinstance(f, torch.Tensor) or f.dim() != 2 or f.shape[0] != x.shape[0]:
            raise ValueError(f"feature_extractor: got {getattr(f, 'shape', type(f))} for "
                             f"{x.shape[0]} images, expected a tensor ({x.shape[0]}, D)")
        return f.detach().cpu().double().numpy()

    def update(self, real=None, fake=None) -> None:
        """Add a batch of real and/or generated images (each a tensor or uint8 array)."""
        for key, images in (("real", real), ("fake", fake)):
            if images is not None:
                self._features[key].append(self._extract(images, f"{key} images"))

    def features(self, images) -> np.ndarray:
        """The features (N, D) that :meth:`update` would add for these images."""
        return self._extract(images, "images")

    def add_features(self, real=None, fake=None) -> None:
        """Add features (N, D) from :meth:`features`: one pass over the real images can serve the
        FIDs of several methods."""
        for key, f in (("real", real), ("fake", fake)):
            if f is not None:
                if not isinstance(f, np.ndarray) or f.ndim != 2:
                    raise ValueError(f"{key}: got {getattr(f, 'shape', type(f).__name__)}, expected "
                                     "a features array (N, D)")
                self._features[key].append(f.astype(np.float64, copy=False))

    @property
    def counts(self) -> tuple[int, int]:
        """(real, generated) images seen so far."""
        return tuple(sum(len(f) for f in self._features[k]) for k in ("real", "fake"))

    def compute(self) -> FIDResult:
        """FID of the images seen so far; warns (FIDSampleSizeWarning) when they are too few."""
        n_real, n_fake = self.counts
        if min(n_real, n_fake) < 2:
            raise ValueError(f"FID needs at least 2 real and 2 generated images, got {n_real} "
                             f"and {n_fake}")
        real, fake = (np.concatenate(self._features[k]) for k in ("real", "fake"))
        if real.shape[1] != fake.shape[1]:
            raise ValueError(f"features of real ({real.shape[1]}) and generated "
                             f"({fake.shape[1]}) images differ in dimension")
        dim = real.shape[1]
        if min(n_real, n_fake) < max(self.min_images, dim + 1):
            warnings.warn(
                f"FID from {n_real} real and {n_fake} generated images with {dim}-d features: "
                f"below {max(self.min_images, dim + 1)} the estimate is strongly biased (and the "
                f"covariance singular below {dim + 1}); state the count and compare only at "
                "equal N", FIDSampleSizeWarning, stacklevel=2)
        value = frechet_distance(*feature_statistics(real), *feature_statistics(fake))
        return FIDResult(value, n_real, n_fake, dim, self.name, self.comparable, self.min_images)


def _batches(images, name: str) -> Iterator[torch.Tensor]:
    # A single tensor/array is one batch; anything else is an iterable of batches.
    if isinstance(images, np.ndarray) and images.ndim != 4:
        raise ValueError(f"{name}: got an array of shape {images.shape}, expected a set of "
                         "images (N, H, W, 3)")
    for batch in [images] if isinstance(images, torch.Tensor | np.ndarray) else images:
        yield to_image_batch(batch, name)


def compute_fid(real_images, fake_images, feature_extractor: FeatureExtractor | None = None, *,
                batch_size: int = 32, min_images: int = FID_MIN_IMAGES,
                device: torch.device | str | None = None) -> FIDResult:
    """FID between two image sets: tensors (N, 3, H, W) in [0, 1], uint8 arrays (N, H, W, 3), or
    iterables of such batches (sizes may differ between batches)."""
    check_positive_int("batch_size", batch_size)
    metric = FIDMetric(feature_extractor, min_images=min_images, device=device)
    for key, images in (("real", real_images), ("fake", fake_images)):
        for batch in _batches(images, f"{key}_images"):  # (B, 3, H, W)
            for start in range(0, len(batch), batch_size):
                metric.update(**{key: batch[start:start + batch_size]})
    return metric.compute()
