"""Image-quality metrics of inpainting papers: PSNR, SSIM, LPIPS and FID.

Taught in ``notebooks/07_evaluation.ipynb``. Images are float tensors (B, 3, H, W) in [0, 1] or
uint8 arrays (H, W, 3) / (B, H, W, 3). :func:`psnr`, :func:`ssim` and :class:`LPIPSMetric`
return one value per image, a tensor (B,); FID compares two *sets* of images
(:func:`compute_fid`, :class:`FIDMetric`). Papers compute all of them on the composited output
(known pixels kept), and so should callers.

Pretrained networks (LPIPS' AlexNet/VGG trunk, FID's Inception-v3) come from torch.hub's cache
or a file the caller names, or are downloaded when the host answers within seconds; otherwise
they fail at once naming the file to place and where. Random networks only on request, and then
labelled as not comparable to published numbers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bidsnet_lib.plumbing import fetch_weights

# ----------------------------------------------------------------------------------------------
# Inputs


def to_image_batch(x: torch.Tensor | np.ndarray, name: str = "image") -> torch.Tensor:
    """Float tensor (B, 3, H, W) in [0, 1] from such a tensor or uint8 (H, W, 3) / (B, H, W, 3)."""
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint8 or x.ndim not in (3, 4) or x.shape[-1] != 3:
            raise ValueError(f"{name}: got a {x.dtype} array of shape {x.shape}; expected uint8 "
                             "(H, W, 3) or (B, H, W, 3)")
        x = torch.from_numpy(np.ascontiguousarray(x if x.ndim == 4 else x[None]))
        # float32: float64 depthwise convolutions (SSIM) are many times slower on CPU, and float32
        # already agrees with scikit-image's float64 to ~1e-6.
        return x.permute(0, 3, 1, 2).float() / 255  # (B, 3, H, W)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: got {type(x).__name__}; expected a float tensor (B, 3, H, W) "
                        "in [0, 1] or a uint8 numpy array (H, W, 3) / (B, H, W, 3)")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name}: got a tensor of shape {tuple(x.shape)}; expected (B, 3, H, W)")
    if not x.is_floating_point():
        raise ValueError(f"{name}: got dtype {x.dtype}; expected a float tensor in [0, 1]")
    if x.numel() and (torch.isnan(x).any() or x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name}: values span [{x.min().item():.4g}, {x.max().item():.4g}]; "
                         "expected values in [0, 1] (no NaN)")
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _pair(pred, target) -> tuple[torch.Tensor, torch.Tensor]:
    p, t = to_image_batch(pred, "pred"), to_image_batch(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred has shape {tuple(p.shape)} and target {tuple(t.shape)} "
                         "(as (B, 3, H, W)); expected equal shapes")
    dtype = torch.promote_types(p.dtype, t.dtype)
    return p.to(dtype), t.to(device=p.device, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# PSNR and SSIM


def psnr(pred, target) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, 10·log10(1 / MSE) on [0, 1]: shape (B,).

    Identical images give +inf. uint8 inputs give the same value as data range 255.
    """
    p, t = _pair(pred, target)
    mse = (p - t).pow(2).flatten(1).mean(dim=1)  # (B,)
    return 10 * torch.log10(1 / mse)


SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA,
                    dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The normalised 1-D Gaussian of SSIM, shape (size,)."""
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(pred, target) -> torch.Tensor:
    """Mean structural similarity per image (Wang et al. 2004), shape (B,).

    Gaussian window 11×11 with σ = 1.5, K1 = 0.01, K2 = 0.03, population (not sample) statistics;
    the SSIM map is kept only where the window lies inside the image ('valid', 5 px cropped per
    side) and averaged over pixels and the three channels. This is scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    channel_axis=-1)``, which also crops (win_size - 1) // 2 pixels before averaging.
    """
    p, t = _pair(pred, target)
    b, c, h, w = p.shape
    if min(h, w) < SSIM_WINDOW:
        raise ValueError(f"pred/target are {h}x{w}; SSIM needs both sides >= {SSIM_WINDOW}")
    g = gaussian_window(dtype=p.dtype).to(p.device)
    # Five statistics of each channel filtered at once: the separable Gaussian as a row then a
    # column depthwise convolution, no padding ('valid').
    stats = torch.cat([p, t, p * p, t * t, p * t], dim=1)  # (B, 15, H, W)
    groups = stats.shape[1]
    stats = F.conv2d(stats, g.view(1, 1, 1, -1).expand(groups, 1, 1, -1), groups=groups)
    stats = F.conv2d(stats, g.view(1, 1, -1, 1).expand(groups, 1, -1, 1), groups=groups)
    mu_p, mu_t, e_pp, e_tt, e_pt = stats.split(c, dim=1)  # each (B, 3, H - 10, W - 10)
    var_p, var_t, cov = e_pp - mu_p**2, e_tt - mu_t**2, e_pt - mu_p * mu_t
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # data range 1
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / (
        (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return ssim_map.flatten(1).mean(dim=1)  # (B,)


# ----------------------------------------------------------------------------------------------
# Hole colour error: a colour cast needs no ground truth to be seen

COLOUR_RING = 5  # px: the known pixels this close to a hole are its surroundings


def _hole_masks(mask, batch: int, shape: tuple[int, int]) -> np.ndarray:
    """A mask as (B, H, W) bool from a tensor (B, 1, H, W) or an array (H, W) / (B, H, W)."""
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.ndim == 2:
        m = m[None]
    if m.shape != (batch, *shape):
        raise ValueError(f"mask: got shape {tuple(np.shape(mask))}; expected ({batch}, 1, {shape[0]}, "
                         f"{shape[1]}), ({batch}, {shape[0]}, {shape[1]}) or {shape} for one image")
    if not np.isin(m, (0, 1)).all():
        raise ValueError("mask: got values other than 0 and 1; expected 1 = hole, 0 = known")
    return m.astype(bool)


def hole_colour_error(pred, mask, ring: int = COLOUR_RING) -> torch.Tensor:
    """How far each filled hole's mean colour lies from its surroundings', per image: shape (B,).

    For each hole (8-connected component of ``mask``, 1 = hole): the Euclidean distance, in 0–255
    RGB units, between the mean colour of its pixels in ``pred`` and the mean colour of the known
    pixels within ``ring`` pixels of it; averaged over the image's holes weighted by their areas.
    A colour cast or blotch shows as a large value; a true photo scores above 0 too (its hidden
    content differs from the ring), so compare with the photo's own score. NaN when no hole has a
    known pixel around it.
    """
    p = to_image_batch(pred, "pred")
    if isinstance(ring, bool) or not isinstance(ring, int) or ring < 1:
        raise ValueError(f"ring: got {ring!r}; expected an int >= 1 (pixels)")
    holes = _hole_masks(mask, p.shape[0], tuple(p.shape[-2:]))
    rgb = (p.detach().double() * 255).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring + 1, 2 * ring + 1))
    errors = []
    for image, hole in zip(rgb, holes, strict=True):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=8)
        total, weight = 0.0, 0
        for label in range(1, count):
            x, y, w, h, area = stats[label]
            # The component's box grown by the ring: dilation needs only that window.
            y0, x0 = max(y - ring, 0), max(x - ring, 0)
            y1, x1 = min(y + h + ring, hole.shape[0]), min(x + w + ring, hole.shape[1])
            own = (labels[y0:y1, x0:x1] == label).astype(np.uint8)
            around = cv2.dilate(own, kernel).astype(bool) & ~hole[y0:y1, x0:x1]
            if not around.any():
                continue
            window = image[y0:y1, x0:x1]
            gap = window[own.astype(bool)].mean(axis=0) - window[around].mean(axis=0)  # (3,)
            total += area * float(np.sqrt((gap**2).sum()))
            weight += area
        errors.append(total / weight if weight else math.nan)
    return torch.tensor(errors, dtype=torch.float64)


# ----------------------------------------------------------------------------------------------
# Pretrained weight files


# ----------------------------------------------------------------------------------------------
# LPIPS

# lpips' trunk names -> torchvision's architecture name; its ImageNet weights give the file name.
LPIPS_NETS = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}


def lpips_backbone_file(net: str = "alex") -> tuple[str, str]:
    """(file name, URL) of the torchvision ImageNet weights that LPIPS' ``net`` trunk uses."""
    if net not in LPIPS_NETS:
        raise ValueError(f"net: got {net!r}; expected one of {sorted(LPIPS_NETS)}")
    from torchvision.models import get_model_weights

    url = get_model_weights(LPIPS_NETS[net]).IMAGENET1K_V1.url
    return url.rsplit("/", 1)[1], url


class LPIPSMetric:
    """LPIPS (Zhang et al. 2018) through the ``lpips`` package: ``metric(pred, target) -> (B,)``.

    The linear heads ship with ``lpips``; the trunk's ImageNet weights are torchvision's file
    (``lpips_backbone_file(net)``), loaded from ``backbone_path``, torch.hub's cache or a
    download, never silently replaced. ``random_backbone=True`` uses a randomly initialised trunk
    (seeded, so repeatable); then ``comparable`` is False and ``label`` says so.
    """

    def __init__(self, net: str = "alex", *, backbone_path=None, random_backbone: bool = False,
                 download: bool = True, device: torch.device | str | None = None):
        file_name, url = lpips_backbone_file(net)
        if random_backbone and backbone_path is not None:
            raise ValueError("backbone_path: given together with random_backbone=True; "
                             "expected one or the other")
        if not random_backbone:
            # Before building anything: a missing file must fail fast.
            state, self.source = fetch_weights(
                file_name, url, f"LPIPS(net={net!r})", backbone_path, download,
                alternative=(" (backbone_path=...), or pass random_backbone=True for a random "
                             "trunk whose scores are NOT comparable to published LPIPS"))
        import lpips  # here, not at the top: importing it takes seconds and only LPIPS needs it

        # pnet_rand=True stops lpips from asking torchvision to download the trunk; the local
        # weights are copied in below. torchvision warns about lpips' old `pretrained=` call.
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
            warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
            torch.manual_seed(0)
            self.model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
        if random_backbone:
            self.source = "random"
        else:
            self._load_trunk(state, LPIPS_NETS[net])
        self.net, self.random_backbone, self.comparable = net, random_backbone, not random_backbone
        self.label = f"LPIPS ({net})" if self.comparable else (
            f"LPIPS ({net}, RANDOM trunk: not comparable to published LPIPS)")
        self.model.eval().requires_grad_(False)
        if device is not None:
            self.model.to(device)

    def _load_trunk(self, state: Mapping[str, torch.Tensor], arch: str) -> None:
        # lpips keeps torchvision's `features[i]` modules under their index i inside its slices,
        # so `features.i.weight` of the torchvision file maps onto them one to one.
        targets = {f"features.{i}.{k}": v for part in self.model.net.children()
                   for i, module in part.named_children()
                   for k, v in module.state_dict(keep_vars=True).items()}
        missing = [k for k in targets if k not in state]
        bad = [k for k in targets
               if k in state and getattr(state[k], "shape", None) != targets[k].shape]
        if missing or bad:
            raise ValueError(f"{self.source}: not a torchvision {arch} state dict; missing keys "
                             f"{missing[:4]}, wrong shapes {bad[:4]}")
        with torch.no_grad():
            for k, v in targets.items():
                v.copy_(state[k])

    def __call__(self, pred, target) -> torch.Tensor:
        p, t = _pair(pred, target)
        device = next(self.model.parameters()).device
        with torch.no_grad():
            d = self.model(p.to(device, torch.float32), t.to(device, torch.float32), normalize=True)
        return d.flatten().to(p.device)  # (B,)


# ----------------------------------------------------------------------------------------------
# FID: the Fréchet distance between Gaussians fitted to features


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
            raise ValueError(f"{name}: got shape {a.shape}; expected a finite "
                             f"{'vector (D,)' if ndim == 1 else 'matrix (D, D)'}")
        arrays.append(a)
    mu1, sigma1, mu2, sigma2 = arrays
    d = mu1.shape[0]
    for name, a, shape in (("mu2", mu2, (d,)), ("sigma1", sigma1, (d, d)), ("sigma2", sigma2, (d, d))):
        if a.shape != shape:
            raise ValueError(f"{name}: got shape {a.shape}; expected {shape} to match mu1")
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
        raise ValueError(f"features: got shape {f.shape}; expected (N, D) with N >= 2")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


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
            raise TypeError(f"feature_extractor: got {type(feature_extractor).__name__}; "
                            "expected a callable images (B, 3, H, W) -> features (B, D)")
        if isinstance(feature_extractor, nn.Module) and device is not None:
            feature_extractor = feature_extractor.to(device)
        if not isinstance(min_images, int) or min_images < 2:
            raise ValueError(f"min_images: got {min_images!r}; expected an int >= 2")
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
            raise ValueError(f"feature_extractor returned {getattr(f, 'shape', type(f))} for "
                             f"{x.shape[0]} images; expected a tensor ({x.shape[0]}, D)")
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
                    raise ValueError(f"{key}: got {getattr(f, 'shape', type(f).__name__)}; expected "
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
        raise ValueError(f"{name}: got an array of shape {images.shape}; expected a set of "
                         "images (N, H, W, 3)")
    for batch in [images] if isinstance(images, torch.Tensor | np.ndarray) else images:
        yield to_image_batch(batch, name)


def compute_fid(real_images, fake_images, feature_extractor: FeatureExtractor | None = None, *,
                batch_size: int = 32, min_images: int = FID_MIN_IMAGES,
                device: torch.device | str | None = None) -> FIDResult:
    """FID between two image sets: tensors (N, 3, H, W) in [0, 1], uint8 arrays (N, H, W, 3), or
    iterables of such batches (sizes may differ between batches)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: got {batch_size!r}; expected a positive int")
    metric = FIDMetric(feature_extractor, min_images=min_images, device=device)
    for key, images in (("real", real_images), ("fake", fake_images)):
        for batch in _batches(images, f"{key}_images"):  # (B, 3, H, W)
            for start in range(0, len(batch), batch_size):
                metric.update(**{key: batch[start:start + batch_size]})
    return metric.compute()
