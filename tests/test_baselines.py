"""bidsnet_lib.baselines: OpenCV Telea / Navier–Stokes behind the model's (image, mask) interface."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bidsnet_lib.baselines import BASELINES, OpenCVInpaint, make_baseline
from bidsnet_lib.metrics import psnr

PHOTO = Path(__file__).resolve().parents[1] / "data" / "images" / "test" / "skimage_rocket.jpg"


def _gradient(b=2, h=48, w=64) -> torch.Tensor:
    """A smooth colour ramp (B, 3, H, W) in [0, 1]: what a border-propagating fill can rebuild."""
    y = torch.linspace(0, 1, h)[:, None].expand(h, w)
    x = torch.linspace(0, 1, w)[None, :].expand(h, w)
    return torch.stack([x, y, 0.25 + 0.5 * (x + y) / 2]).expand(b, 3, h, w).clone()


def _box_mask(h=48, w=64) -> torch.Tensor:
    mask = torch.zeros(2, 1, h, w)  # (2, 1, H, W): a box per image
    mask[0, :, 15:30, 20:36] = 1
    mask[1, :, 5:12, 40:60] = 1
    return mask


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_known_pixels_kept_and_holes_filled_smoothly(name):
    image, mask = _gradient(), _box_mask()
    out = make_baseline(name, radius=3)(image, mask)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert torch.equal(out[mask.expand_as(out) == 0], image[mask.expand_as(image) == 0])
    assert out.min() >= 0 and out.max() <= 1
    hole = mask.expand_as(out).bool()
    error = (out - image).abs()[hole].mean().item()
    # Far better than the best constant fill (the image's mean colour).
    constant = (image.mean(dim=(2, 3), keepdim=True).expand_as(image) - image).abs()[hole].mean()
    assert error < 0.04 and error < constant.item() / 3
    assert (out - image)[hole].abs().max() > 0  # the hole was really inpainted, not copied


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_real_photo_hole_and_bool_mask(name):
    rgb = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)[:128, :128]
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255  # (1, 3, 128, 128)
    mask = torch.zeros(1, 1, 128, 128, dtype=torch.bool)
    mask[..., 50:60, 30:90] = True  # a thin horizontal stroke
    out = make_baseline(name)(image, mask)
    assert torch.equal(out[~mask.expand_as(out)], image[~mask.expand_as(image)])
    grey = torch.full_like(image, 0.5)
    grey_fill = torch.where(mask, grey, image)
    assert psnr(out, image) > psnr(grey_fill, image) + 5


def test_radius_and_method_change_the_fill():
    rgb = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)[:96, :96]
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    mask = torch.zeros(1, 1, 96, 96)
    mask[..., 30:60, 30:60] = 1
    telea3, telea9 = make_baseline("telea", 3)(image, mask), make_baseline("telea", 9)(image, mask)
    ns3 = make_baseline("ns", 3)(image, mask)
    assert not torch.equal(telea3, telea9) and not torch.equal(telea3, ns3)


def test_matches_cv2_inpaint_inside_the_hole():
    image, mask = _gradient(b=1), _box_mask()[:1]
    out = OpenCVInpaint("ns", radius=5)(image, mask)
    pixels = (image[0].permute(1, 2, 0) * 255).round().byte().numpy()
    expected = cv2.inpaint(pixels, mask[0, 0].byte().numpy(), 5, cv2.INPAINT_NS)
    got = (out[0].permute(1, 2, 0) * 255).round().byte().numpy()
    hole = mask[0, 0].bool().numpy()
    np.testing.assert_array_equal(got[hole], expected[hole])


def test_names_and_repr():
    telea = make_baseline("telea", radius=5)
    assert telea.name == "Telea (r=5)" and repr(telea) == "OpenCVInpaint(method='telea', radius=5)"
    assert make_baseline("ns").name == "Navier-Stokes (r=3)"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "lama"}, r"name: got 'lama'; expected one of \['ns', 'telea'\]"),
        ({"name": "telea", "radius": 0}, "radius: got 0; expected an int >= 1"),
        ({"name": "ns", "radius": 2.5}, "radius: got 2.5"),
        ({"name": "ns", "radius": True}, "radius: got True"),
    ],
)
def test_bad_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_baseline(**kwargs)


@pytest.mark.parametrize(
    "image, mask, error, match",
    [
        (np.zeros((8, 8, 3)), torch.zeros(1, 1, 8, 8), TypeError, "image must be a torch.Tensor"),
        (
            torch.zeros(1, 3, 8, 8),
            torch.zeros(1, 3, 8, 8),
            ValueError,
            r"mask must be \(B, 1, H, W\)",
        ),
        (
            torch.zeros(1, 3, 8, 8),
            torch.zeros(1, 1, 8, 9),
            ValueError,
            "does not match image shape",
        ),
        (torch.full((1, 3, 8, 8), 2.0), torch.zeros(1, 1, 8, 8), ValueError, "expected values in"),
        (torch.zeros(1, 3, 8, 8), torch.full((1, 1, 8, 8), 0.5), ValueError, "mask must be binary"),
        (
            torch.zeros(1, 3, 8, 8, dtype=torch.uint8),
            torch.zeros(1, 1, 8, 8),
            ValueError,
            "float tensor",
        ),
    ],
)
def test_bad_inputs(image, mask, error, match):
    with pytest.raises(error, match=match):
        make_baseline("telea")(image, mask)
