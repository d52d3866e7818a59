"""Image-quality metrics, one value per image: PSNR, SSIM and LPIPS as inpainting papers report
them, and a hole colour error that needs no ground truth.

Taught in ``notebooks/07_evaluation.ipynb``. Images are float tensors (B, 3, H, W) in [0, 1] or
uint8 arrays (H, W, 3) / (B, H, W, 3). :func:`psnr`, :func:`ssim`, :func:`hole_colour_error` and
:class:`LPIPSMetric` return one value per image, a tensor (B,); FID, which compares two *sets* of
images, is :mod:`bidsnet_lib.fid`. Papers compute them on the composited output (known pixels
kept), and so should callers.

LPIPS' pretrained AlexNet/VGG trunk comes from torch.hub's cache or a file the caller names, or is
downloaded when the host answers within seconds; otherwise it fails at once naming the file to
place and where. A random trunk only on request, and then labelled as not comparable to published
numbers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from bidsnet_lib.plumbing import check_choice, check_int, fetch_weights

# ----------------------------------------------------------------------------------------------
# Inputs


def to_image_batch(x: torch.Tensor | np.ndarray, name: str = "image") -> torch.Tensor:
    """Float tensor (B, 3, H, W) in [0, 1] from such a tensor or uint8 (H, W, 3) / (B, H, W, 3)."""
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint8 or x.ndim not in (3, 4) or x.shape[-1] != 3:
            raise ValueError(f"{name}: got a {x.dtype} array of shape {x.shape}, expected uint8 "
                             "(H, W, 3) or (B, H, W, 3)")
        x = torch.from_numpy(np.ascontiguousarray(x if x.ndim == 4 else x[None]))
        # float32: float64 depthwise convolutions (SSIM) are many times slower on CPU, and float32
        # already agrees with scikit-image's float64 to ~1e-6.
        return x.permute(0, 3, 1, 2).float() / 255  # (B, 3, H, W)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: got {type(x).__name__}, expected a float tensor (B, 3, H, W) "
                        "in [0, 1] or a uint8 numpy array (H, W, 3) / (B, H, W, 3)")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name}: got a tensor of shape {tuple(x.shape)}, expected (B, 3, H, W)")
    if not x.is_floating_point():
        raise ValueError(f"{name}: got dtype {x.dtype}, expected a float tensor in [0, 1]")
    if x.numel() and (torch.isnan(x).any() or x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name}: got values in [{x.min().item():.4g}, {x.max().item():.4g}], "
                         "expected values in [0, 1] (no NaN)")
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _pair(pred, target) -> tuple[torch.Tensor, torch.Tensor]:
    p, t = to_image_batch(pred, "pred"), to_image_batch(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred, target: got shapes {tuple(p.shape)} and {tuple(t.shape)}, "
                         "expected equal shapes (B, 3, H, W)")
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
        raise ValueError(f"mask: got shape {tuple(np.shape(mask))}, expected ({batch}, 1, {shape[0]}, "
                         f"{shape[1]}), ({batch}, {shape[0]}, {shape[1]}) or {shape} for one image")
    if not np.isin(m, (0, 1)).all():
        raise ValueError("mask: got values other than 0 and 1, expected 1 = hole, 0 = known")
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
    check_int("ring", ring, 1)  # pixels
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
# LPIPS

# lpips' trunk names -> torchvision's architecture name; its ImageNet weights give the file name.
LPIPS_NETS = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}


def lpips_backbone_file(net: str = "alex") -> tuple[str, str]:
    """(file name, URL) of the torchvision ImageNet weights that LPIPS' ``net`` trunk uses."""
    check_choice("net", net, sorted(LPIPS_NETS))
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
