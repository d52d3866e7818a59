"""Classical inpainting baselines: OpenCV's Telea (2004) and Navier–Stokes (Bertalmío et al. 2001).

Taught in ``notebooks/07_evaluation.ipynb``. They sit behind the model's interface so every table
can put them side by side: ``make_baseline("telea", radius=3)(image, mask)`` takes an image
(B, 3, H, W) float in [0, 1] and a mask (B, 1, H, W) with 1 = hole, and returns (B, 3, H, W) in
[0, 1] with the known pixels unchanged bit for bit, like ``composite(model(image, mask), ...)``.

Both propagate the hole's border inwards (Telea: a fast-marching weighted average; NS: isophote
transport by a fluid-dynamics PDE), so they fill thin strokes well and large holes with smears.
"""

import cv2
import torch

from bidsnet_lib.model import check_inputs, composite, opencv_fill

BASELINES = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
BASELINE_LABELS = {"telea": "Telea", "ns": "Navier-Stokes"}


class OpenCVInpaint:
    """``cv2.inpaint`` as a callable ``(image, mask) -> inpainted image`` on batches of tensors."""

    def __init__(self, method: str = "telea", radius: int = 3):
        if method not in BASELINES:
            raise ValueError(f"method: got {method!r}; expected one of {sorted(BASELINES)}")
        if isinstance(radius, bool) or not isinstance(radius, int) or radius < 1:
            raise ValueError(f"radius: got {radius!r}; expected an int >= 1 (pixels)")
        self.method, self.radius = method, radius
        self.name = f"{BASELINE_LABELS[method]} (r={radius})"

    def __repr__(self) -> str:
        return f"OpenCVInpaint(method={self.method!r}, radius={self.radius})"

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        check_inputs(image, mask)
        # Only the hole takes OpenCV's 8-bit values; known pixels come back from `image` itself.
        return composite(opencv_fill(image, mask, BASELINES[self.method], self.radius), image, mask)


def make_baseline(name: str, radius: int = 3) -> OpenCVInpaint:
    """The named OpenCV baseline ("telea" or "ns") with the given neighbourhood radius."""
    if name not in BASELINES:
        raise ValueError(f"name: got {name!r}; expected one of {sorted(BASELINES)}")
    return OpenCVInpaint(name, radius)
