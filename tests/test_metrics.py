"""bidsnet_lib.metrics: PSNR/SSIM against scikit-image on real photos, LPIPS loading, and the hole
colour error."""

import math
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bidsnet_lib import metrics, plumbing
from bidsnet_lib.metrics import LPIPSMetric, hole_colour_error, lpips_backbone_file, psnr, ssim

IMAGES = Path(__file__).resolve().parents[1] / "data" / "images"


def _photo(name: str, size=(192, 256)) -> np.ndarray:
    """A centre crop (H, W, 3) uint8 RGB of a shipped photo."""
    bgr = cv2.imread(str(next(IMAGES.glob(f"*/{name}.jpg"))))
    h, w = bgr.shape[:2]
    top, left = (h - size[0]) // 2, (w - size[1]) // 2
    return cv2.cvtColor(bgr[top : top + size[0], left : left + size[1]], cv2.COLOR_BGR2RGB)


def _degradations(image: np.ndarray) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    noisy = np.clip(image + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(image, (7, 7), 2.0)
    jpeg = cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 20])[1], 1)
    hole = np.zeros(image.shape[:2], np.uint8)
    cv2.circle(hole, (image.shape[1] // 2, image.shape[0] // 2), 40, 1, -1)
    inpainted = cv2.inpaint(image, hole, 3, cv2.INPAINT_TELEA)
    darker = (image * 0.8).astype(np.uint8)
    return [noisy, blurred, jpeg, inpainted, darker]


def _skimage_ssim(a, b, data_range):
    return structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=data_range,
        channel_axis=-1,
    )


@pytest.fixture(scope="module")
def photo_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    pairs = []
    for name in ("skimage_rocket", "lomiri_greentock_by_peter_nerlich"):
        target = _photo(name)
        pairs += [(d, target) for d in _degradations(target)]
    return pairs


# ----------------------------------------------------------------------------------------------
# PSNR and SSIM


def test_psnr_ssim_match_skimage_on_uint8_photos(photo_pairs):
    for pred, target in photo_pairs:
        ours_psnr, ours_ssim = psnr(pred, target), ssim(pred, target)
        assert ours_psnr.shape == ours_ssim.shape == (1,)
        assert abs(ours_psnr.item() - peak_signal_noise_ratio(target, pred)) < 1e-4
        assert abs(ours_ssim.item() - _skimage_ssim(pred, target, 255)) < 1e-3


def test_psnr_ssim_match_skimage_on_float_tensor_batches(photo_pairs):
    pred = torch.from_numpy(np.stack([p for p, _ in photo_pairs])).permute(0, 3, 1, 2) / 255
    target = torch.from_numpy(np.stack([t for _, t in photo_pairs])).permute(0, 3, 1, 2) / 255
    pred, target = pred.float(), target.float()  # (10, 3, 192, 256)
    ours_psnr, ours_ssim = psnr(pred, target), ssim(pred, target)
    assert ours_psnr.shape == ours_ssim.shape == (len(photo_pairs),)
    for i in range(len(photo_pairs)):
        p = pred[i].permute(1, 2, 0).double().numpy()
        t = target[i].permute(1, 2, 0).double().numpy()
        assert abs(ours_psnr[i].item() - peak_signal_noise_ratio(t, p, data_range=1)) < 1e-4
        assert abs(ours_ssim[i].item() - _skimage_ssim(p, t, 1)) < 1e-3
    # Batched uint8 (B, H, W, 3) gives the same numbers as the float tensors.
    as_uint8 = np.stack([p for p, _ in photo_pairs]), np.stack([t for _, t in photo_pairs])
    torch.testing.assert_close(ssim(*as_uint8).float(), ours_ssim, rtol=0, atol=1e-5)


def test_identical_images_and_ordering():
    image = _photo("skimage_chelsea", (64, 64))
    assert psnr(image, image).item() == float("inf")
    assert ssim(image, image).item() == pytest.approx(1.0)
    noisy, blurred = _degradations(image)[:2]
    # More noise, lower scores.
    rng = np.random.default_rng(1)
    noisier = np.clip(image + rng.normal(0, 30, image.shape), 0, 255).astype(np.uint8)
    assert psnr(noisier, image) < psnr(noisy, image)
    assert ssim(noisier, image) < ssim(noisy, image)
    assert ssim(blurred, image) == pytest.approx(ssim(image, blurred).item())  # symmetric


@pytest.mark.parametrize(
    "pred, target, error, match",
    [
        ([[0.5]], torch.zeros(1, 3, 16, 16), TypeError, "pred: got list"),
        (np.zeros((16, 16, 3)), np.zeros((16, 16, 3), np.uint8), ValueError, "pred: got a float64"),
        (
            torch.zeros(1, 1, 16, 16),
            torch.zeros(1, 1, 16, 16),
            ValueError,
            r"expected \(B, 3, H, W\)",
        ),
        (
            torch.zeros(1, 3, 16, 16, dtype=torch.uint8),
            torch.zeros(1, 3, 16, 16),
            ValueError,
            "expected a float tensor",
        ),
        (
            torch.full((1, 3, 16, 16), 1.5),
            torch.zeros(1, 3, 16, 16),
            ValueError,
            r"got values in \[1.5, 1.5\], expected values in \[0, 1\]",
        ),
        (torch.zeros(2, 3, 16, 16), torch.zeros(1, 3, 16, 16), ValueError, "expected equal shapes"),
        (torch.zeros(1, 3, 8, 16), torch.zeros(1, 3, 8, 16), ValueError, "SSIM needs both sides"),
    ],
)
def test_bad_inputs(pred, target, error, match):
    with pytest.raises(error, match=match):
        ssim(pred, target)
    if match != "SSIM needs both sides":
        with pytest.raises(error, match=match):
            psnr(pred, target)


def test_gaussian_window():
    g = metrics.gaussian_window()
    assert g.shape == (11,) and g.sum().item() == pytest.approx(1.0)
    assert torch.equal(g, g.flip(0)) and g.argmax().item() == 5


# ----------------------------------------------------------------------------------------------
# LPIPS


def _random_alexnet_features(path: Path) -> dict[str, torch.Tensor]:
    import torchvision

    torch.manual_seed(3)
    state = {
        f"features.{k}": v for k, v in torchvision.models.alexnet().features.state_dict().items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_lpips_without_backbone_fails_fast_naming_file_and_place(hub_checkpoints):
    lpips_backbone_file("alex")  # warm torchvision's imports: the timing below is ours alone
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        LPIPSMetric("alex")
    assert time.perf_counter() - start < 1  # checked before lpips builds anything
    message = str(info.value)
    print(message)  # what a user sees
    assert "alexnet-owt-7be5be79.pth" in message
    assert str(hub_checkpoints / "alexnet-owt-7be5be79.pth") in message
    assert "cannot be reached" in message and "random_backbone=True" in message
    assert "NOT comparable" in message
    with pytest.raises(FileNotFoundError, match="switched off"):
        LPIPSMetric("alex", download=False)


def test_reachability_probe_is_bounded():
    # The only network wait on a missing file: a TCP connect with a short time-out. The address
    # is reserved for documentation (TEST-NET-1), so nothing answers there.
    start = time.perf_counter()
    assert not plumbing.reachable("https://192.0.2.1/weights.pth", timeout=0.3)
    assert time.perf_counter() - start < 2


def test_lpips_loads_backbone_file_from_torch_home(hub_checkpoints, tmp_path):
    file_name, url = lpips_backbone_file("alex")
    assert url.endswith(file_name)
    saved = _random_alexnet_features(hub_checkpoints / file_name)
    metric = LPIPSMetric("alex")
    assert metric.comparable and metric.label == "LPIPS (alex)"
    assert metric.source == hub_checkpoints / file_name
    torch.testing.assert_close(metric.model.net.slice1[0].weight, saved["features.0.weight"])
    torch.testing.assert_close(
        getattr(metric.model.net.slice5, "10").bias, saved["features.10.bias"]
    )
    image = _photo("skimage_coffee", (64, 96))
    noisy, blurred = _degradations(image)[:2]
    scores = metric(np.stack([image, noisy, blurred]), np.stack([image] * 3))
    assert scores.shape == (3,)
    assert scores[0].item() == pytest.approx(0.0, abs=1e-6) and (scores[1:] > 0).all()
    # An explicit path works the same; a file of the wrong network is refused by name.
    same = LPIPSMetric("alex", backbone_path=hub_checkpoints / file_name)
    torch.testing.assert_close(same(noisy, image), scores[1:2])
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(ValueError, match="wrong.pth: not a torchvision alexnet state dict"):
        LPIPSMetric("alex", backbone_path=wrong)
    with pytest.raises(FileNotFoundError, match="no file at"):
        LPIPSMetric("alex", backbone_path=tmp_path / "missing.pth")


def test_lpips_random_backbone_only_when_asked_and_labelled(hub_checkpoints):
    metric = LPIPSMetric("alex", random_backbone=True)
    assert not metric.comparable and metric.source == "random"
    assert "not comparable to published LPIPS" in metric.label
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = x.flip(-1)
    torch.testing.assert_close(metric(x, y), LPIPSMetric("alex", random_backbone=True)(x, y))


def test_lpips_bad_arguments():
    with pytest.raises(
        ValueError, match=r"net: got 'resnet', expected one of \['alex', 'squeeze', 'vgg'\]"
    ):
        LPIPSMetric("resnet")
    with pytest.raises(ValueError, match="backbone_path: given together with random_backbone"):
        LPIPSMetric("alex", backbone_path="x.pth", random_backbone=True)


# ----------------------------------------------------------------------------------------------
# Hole colour error


def _flat(colour, size=32) -> torch.Tensor:
    return torch.tensor(colour, dtype=torch.float64).view(1, 3, 1, 1).expand(1, 3, size, size).clone() / 255


def test_hole_colour_error_measures_a_cast_in_rgb_units():
    image = _flat((100, 120, 140))
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:16, 8:16] = 1
    assert hole_colour_error(image, mask).item() == pytest.approx(0, abs=1e-9)
    cast = torch.where(mask.bool(), _flat((103, 124, 140)), image)  # a (3, 4, 0) cast: distance 5
    assert hole_colour_error(cast, mask).item() == pytest.approx(5, rel=1e-6)
    # Uint8 arrays and (H, W) masks give the same.
    as_uint8 = (cast[0].permute(1, 2, 0) * 255).round().byte().numpy()
    assert hole_colour_error(as_uint8, mask[0, 0].numpy()).item() == pytest.approx(5, rel=1e-6)


def test_hole_colour_error_weighs_holes_by_area_and_uses_only_their_ring():
    image = _flat((50, 50, 50), size=64)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 4:12, 4:12] = 1  # 64 px, filled 10 grey levels too bright: error sqrt(3) * 10
    mask[..., 30:34, 40:44] = 1  # 16 px, filled right
    filled = image.clone()
    filled[..., 4:12, 4:12] += 10 / 255
    # Far from both holes the image may be anything: outside every ring it is never looked at.
    filled[..., 50:, :] = 1.0
    expected = 64 * math.sqrt(3) * 10 / (64 + 16)
    assert hole_colour_error(filled, mask, ring=5).item() == pytest.approx(expected, rel=1e-6)


def test_hole_colour_error_of_a_real_fill_and_of_the_photo_itself():
    photo = torch.from_numpy(_photo("skimage_rocket", (96, 96))).permute(2, 0, 1)[None].float() / 255
    mask = torch.zeros(1, 1, 96, 96)
    mask[..., 30:60, 20:70] = 1
    truth = hole_colour_error(photo, mask).item()
    blue = torch.where(mask.bool(), torch.tensor([0.1, 0.2, 0.9]).view(1, 3, 1, 1), photo)
    assert 0 < truth < hole_colour_error(blue, mask).item()


def test_hole_colour_error_without_a_ring_and_bad_inputs():
    image = _flat((10, 20, 30))
    everything = torch.ones(1, 1, 32, 32)
    assert math.isnan(hole_colour_error(image, everything).item())
    with pytest.raises(ValueError, match="ring: got 0"):
        hole_colour_error(image, torch.zeros(1, 1, 32, 32), ring=0)
    with pytest.raises(ValueError, match=r"mask: got shape \(1, 1, 16, 16\), expected \(1, 1, 32, 32\)"):
        hole_colour_error(image, torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="mask: got values other than 0 and 1"):
        hole_colour_error(image, torch.full((1, 1, 32, 32), 2.0))
