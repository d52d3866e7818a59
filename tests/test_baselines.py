"""bidsnet_lib.baselines: Telea, Navier–Stokes, biharmonic and PatchMatch behind the model's
(image, mask) interface, and the output cache."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bidsnet_lib import baselines as bl
from bidsnet_lib.baselines import BASELINES, CachedBaseline, OpenCVInpaint, make_baseline
from bidsnet_lib.metrics import psnr

SMOOTH = ("telea", "ns", "biharmonic")  # border-propagating: they rebuild a smooth ramp

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


@pytest.mark.parametrize("name", SMOOTH)
def test_known_pixels_kept_and_holes_filled_smoothly(name):
    image, mask = _gradient(), _box_mask()
    out = make_baseline(name)(image, mask)
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


def test_patchmatch_continues_a_texture_and_is_seeded():
    # Vertical stripes, 6 px a period: a border fill smears them, patches copy them.
    x = torch.arange(64)
    stripes = ((x // 3) % 2).float().expand(64, 64)
    image = torch.stack([0.2 + 0.6 * stripes, 0.5 * torch.ones(64, 64), 0.8 - 0.6 * stripes])[None]
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 20:44, 20:44] = 1
    patchmatch = make_baseline("patchmatch")
    out = patchmatch(image, mask)
    assert torch.equal(out[mask.expand_as(out) == 0], image[mask.expand_as(image) == 0])
    assert psnr(out, image) > psnr(make_baseline("telea")(image, mask), image) + 5
    again = make_baseline("patchmatch")(image, mask)
    assert torch.equal(out, again)  # seeded: equal inputs, equal outputs
    assert patchmatch.name == "PatchMatch (p=3)" and "seed=0" in patchmatch.cache_key


def test_biharmonic_is_scikit_images():
    from skimage.restoration import inpaint_biharmonic

    rgb = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)[:64, :64]
    hole = np.zeros((64, 64), np.uint8)
    hole[20:40, 10:50] = 1
    got = make_baseline("biharmonic").fill(rgb, hole)
    expected = np.rint(inpaint_biharmonic(rgb, hole.astype(bool), channel_axis=-1) * 255)
    np.testing.assert_array_equal(got[hole == 1], expected[hole == 1].astype(np.uint8))
    np.testing.assert_array_equal(got[hole == 0], rgb[hole == 0])


def test_patchmatch_without_its_package_names_the_fix(monkeypatch):
    monkeypatch.setattr(bl, "patchmatch_available", lambda: False)
    with pytest.raises(ImportError, match=r"pip install pypatchmatch==2\.2\.0"):
        make_baseline("patchmatch")


def test_cache_computes_once_and_reads_back_bit_for_bit(tmp_path):
    rgb = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)[:48, :48]
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    mask = torch.zeros(1, 1, 48, 48)
    mask[..., 10:30, 5:40] = 1
    cached = CachedBaseline(make_baseline("biharmonic"), tmp_path)
    first = cached(image, mask)
    assert (cached.hits, cached.misses) == (0, 1) and cached.last_seconds > 0
    computed = cached.last_seconds
    files = list(tmp_path.rglob("*.npz"))
    assert len(files) == 1
    again = CachedBaseline(make_baseline("biharmonic"), tmp_path)
    second = again(image, mask)
    assert torch.equal(first, second) and torch.equal(first, make_baseline("biharmonic")(image, mask))
    assert (again.hits, again.misses) == (1, 0) and again.last_seconds == computed  # time as computed
    # Another mask, another method setting: other entries.
    other = mask.clone()
    other[..., 0, 0] = 1
    again(image, other)
    CachedBaseline(make_baseline("telea", 5), tmp_path)(image, mask)
    assert len(list(tmp_path.rglob("*.npz"))) == 3
    # A damaged entry is computed again and rewritten.
    files[0].write_bytes(b"not a numpy file")
    repaired = CachedBaseline(make_baseline("biharmonic"), tmp_path)
    assert torch.equal(repaired(image, mask), first) and repaired.misses == 1
    assert np.load(files[0])["fill"].shape == (int(mask.sum()), 3)
    with pytest.raises(TypeError, match="baseline: got function"):
        CachedBaseline(lambda i, m: i, tmp_path)


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
    assert make_baseline("biharmonic").name == "Biharmonic"
    assert repr(make_baseline("patchmatch", patch_size=5)) == "PatchMatchInpaint(patch_size=5, seed=0)"
    assert list(BASELINES) == ["telea", "ns", "biharmonic", "patchmatch"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "lama"}, r"name: got 'lama', expected one of \['telea', 'ns', 'biharmonic', 'patchmatch'\]"),
        ({"name": "biharmonic", "radius": 3}, "radius: got 3 for 'biharmonic', expected None"),
        ({"name": "telea", "patch_size": 3}, "patch_size: got 3 for 'telea', expected None"),
        ({"name": "patchmatch", "patch_size": 0}, "patch_size: got 0, expected an int >= 1"),
        ({"name": "telea", "radius": 0}, "radius: got 0, expected an int >= 1"),
    ],
)
def test_bad_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_baseline(**kwargs)


@pytest.mark.parametrize("bad", [2.5, True])
def test_a_radius_that_is_no_int_is_a_type_error(bad):
    with pytest.raises(TypeError, match=f"radius: got {bad!r}, expected an int >= 1"):
        make_baseline("ns", radius=bad)


@pytest.mark.parametrize(
    "image, mask, error, match",
    [
        (np.zeros((8, 8, 3)), torch.zeros(1, 1, 8, 8), TypeError, "image: got ndarray, expected a torch.Tensor"),
        (
            torch.zeros(1, 3, 8, 8),
            torch.zeros(1, 3, 8, 8),
            ValueError,
            r"mask: got shape .*, expected \(B, 1, H, W\)",
        ),
        (
            torch.zeros(1, 3, 8, 8),
            torch.zeros(1, 1, 8, 9),
            ValueError,
            "for image shape",
        ),
        (torch.full((1, 3, 8, 8), 2.0), torch.zeros(1, 1, 8, 8), ValueError, "expected values in"),
        (torch.zeros(1, 3, 8, 8), torch.full((1, 1, 8, 8), 0.5), ValueError, "mask: got values other than 0 and 1"),
        (
            torch.zeros(1, 3, 8, 8, dtype=torch.uint8),
            torch.zeros(1, 1, 8, 8),
            ValueError,
            "float tensor",
        ),
    ],
)
@pytest.mark.parametrize("name", list(BASELINES))
def test_bad_inputs(image, mask, error, match, name):
    with pytest.raises(error, match=match):
        make_baseline(name)(image, mask)


def test_fill_checks_its_arrays():
    with pytest.raises(ValueError, match=r"rgb: got float64 \(8, 8, 3\), expected uint8"):
        make_baseline("biharmonic").fill(np.zeros((8, 8, 3)), np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"hole: got \(8, 9\)"):
        make_baseline("telea").fill(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9), np.uint8))
    nan = np.zeros((8, 8), np.float32)
    nan[2, 3] = np.nan  # read as known before: one shared check (plumbing.read_mask) now refuses it
    for baseline in (make_baseline("telea"), CachedBaseline(make_baseline("biharmonic"), Path("unused"))):
        with pytest.raises(ValueError, match=r"hole: got 1 NaN or infinite values, expected a float mask in \[0, 1\]"):
            baseline.fill(np.zeros((8, 8, 3), np.uint8), nan)
