"""bidsnet_lib.metrics: PSNR/SSIM against scikit-image on real photos, LPIPS and FID loading, the
Fréchet distance against closed forms and scipy, and FID with a small deterministic extractor."""

import math
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from bidsnet_lib import metrics, plumbing
from bidsnet_lib.metrics import (
    FID_WEIGHTS_FILE,
    FIDInceptionV3,
    FIDMetric,
    FIDSampleSizeWarning,
    LPIPSMetric,
    compute_fid,
    feature_statistics,
    frechet_distance,
    hole_colour_error,
    load_fid_inception,
    lpips_backbone_file,
    psnr,
    ssim,
)

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
            r"values span \[1.5, 1.5\]",
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


def _offline(monkeypatch, tmp_path) -> Path:
    """A fresh TORCH_HOME and no network: returns torch.hub's checkpoint directory."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(plumbing, "reachable", lambda url, timeout=2.0: False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _random_alexnet_features(path: Path) -> dict[str, torch.Tensor]:
    import torchvision

    torch.manual_seed(3)
    state = {
        f"features.{k}": v for k, v in torchvision.models.alexnet().features.state_dict().items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_lpips_without_backbone_fails_fast_naming_file_and_place(monkeypatch, tmp_path):
    checkpoints = _offline(monkeypatch, tmp_path)
    lpips_backbone_file("alex")  # warm torchvision's imports: the timing below is ours alone
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        LPIPSMetric("alex")
    assert time.perf_counter() - start < 1  # checked before lpips builds anything
    message = str(info.value)
    print(message)  # what a user sees
    assert "alexnet-owt-7be5be79.pth" in message
    assert str(checkpoints / "alexnet-owt-7be5be79.pth") in message
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


def test_lpips_loads_backbone_file_from_torch_home(monkeypatch, tmp_path):
    checkpoints = _offline(monkeypatch, tmp_path)
    file_name, url = lpips_backbone_file("alex")
    assert url.endswith(file_name)
    saved = _random_alexnet_features(checkpoints / file_name)
    metric = LPIPSMetric("alex")
    assert metric.comparable and metric.label == "LPIPS (alex)"
    assert metric.source == checkpoints / file_name
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
    same = LPIPSMetric("alex", backbone_path=checkpoints / file_name)
    torch.testing.assert_close(same(noisy, image), scores[1:2])
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(ValueError, match="wrong.pth: not a torchvision alexnet state dict"):
        LPIPSMetric("alex", backbone_path=wrong)
    with pytest.raises(FileNotFoundError, match="no file at"):
        LPIPSMetric("alex", backbone_path=tmp_path / "missing.pth")


def test_lpips_random_backbone_only_when_asked_and_labelled(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    metric = LPIPSMetric("alex", random_backbone=True)
    assert not metric.comparable and metric.source == "random"
    assert "not comparable to published LPIPS" in metric.label
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = x.flip(-1)
    torch.testing.assert_close(metric(x, y), LPIPSMetric("alex", random_backbone=True)(x, y))


def test_lpips_bad_arguments():
    with pytest.raises(
        ValueError, match=r"net: got 'resnet'; expected one of \['alex', 'squeeze', 'vgg'\]"
    ):
        LPIPSMetric("resnet")
    with pytest.raises(ValueError, match="backbone_path: given together with random_backbone"):
        LPIPSMetric("alex", backbone_path="x.pth", random_backbone=True)


# ----------------------------------------------------------------------------------------------
# Fréchet distance


def _random_spd(rng, d, scale=1.0):
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


def test_frechet_distance_closed_form_commuting_covariances():
    rng = np.random.default_rng(0)
    d = 12
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))  # same eigenvectors: the covariances commute
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-9)
    # One dimension: (m1 - m2)² + (s1 - s2)².
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)


def test_frechet_distance_matches_scipy_sqrtm_on_random_spd():
    rng = np.random.default_rng(1)
    for d in (3, 16, 64):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = _random_spd(rng, d), _random_spd(rng, d, scale=2.0)
        covmean = scipy.linalg.sqrtm(s1 @ s2).real
        expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
        assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-8)
        assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-9


def test_frechet_distance_stays_real_with_singular_covariances():
    rng = np.random.default_rng(2)
    f1, f2 = rng.normal(size=(10, 40)), rng.normal(size=(10, 40)) + 0.5  # N < D: rank 9
    (m1, s1), (m2, s2) = feature_statistics(f1), feature_statistics(f2)
    d12, d21 = frechet_distance(m1, s1, m2, s2), frechet_distance(m2, s2, m1, s1)
    assert np.isfinite(d12) and d12 > 0 and d12 == pytest.approx(d21, rel=1e-8)


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.zeros(3), np.eye(3), np.zeros(2), np.eye(3)), r"mu2: got shape \(2,\)"),
        ((np.zeros(3), np.eye(2), np.zeros(3), np.eye(3)), r"sigma1: got shape \(2, 2\)"),
        ((np.zeros((3, 1)), np.eye(3), np.zeros(3), np.eye(3)), "mu1: got shape"),
        ((np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2)), "sigma1: not positive semi"),
        ((np.zeros(2), np.eye(2), np.array([0, np.nan]), np.eye(2)), "mu2: .* expected a finite"),
    ],
)
def test_frechet_distance_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        frechet_distance(*args)


def test_feature_statistics():
    f = np.random.default_rng(3).normal(size=(50, 4))
    mu, sigma = feature_statistics(torch.from_numpy(f))
    np.testing.assert_allclose(mu, f.mean(0))
    np.testing.assert_allclose(sigma, np.cov(f, rowvar=False))
    with pytest.raises(ValueError, match=r"expected \(N, D\) with N >= 2"):
        feature_statistics(f[:1])


# ----------------------------------------------------------------------------------------------
# FID with a pluggable extractor


class PooledColour:
    """A tiny deterministic extractor: mean colour of each image quadrant, (B, 12)."""

    name = "pooled colour"

    def __call__(self, images):
        return F.adaptive_avg_pool2d(images, 2).flatten(1)


@pytest.fixture(scope="module")
def crops() -> torch.Tensor:
    """40 crops (40, 3, 48, 48) of shipped training photos."""
    rng = np.random.default_rng(0)
    out = []
    for path in sorted(IMAGES.glob("train/*.jpg"))[:10]:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        for _ in range(4):
            y, x = rng.integers(0, rgb.shape[0] - 48), rng.integers(0, rgb.shape[1] - 48)
            out.append(rgb[y : y + 48, x : x + 48])
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def test_compute_fid_with_pluggable_extractor(crops):
    darker = crops * 0.7
    result = compute_fid(crops, darker, PooledColour(), min_images=20, batch_size=7)
    feats = PooledColour()(crops).double().numpy(), PooledColour()(darker).double().numpy()
    expected = frechet_distance(*feature_statistics(feats[0]), *feature_statistics(feats[1]))
    assert result.fid == pytest.approx(expected, rel=1e-9) and result.fid > 0.01
    assert (result.n_real, result.n_fake, result.feature_dim) == (40, 40, 12)
    assert result.extractor == "pooled colour" and not result.comparable
    assert "40 real / 40 generated images" in result.label and "NOT comparable" in result.label
    assert float(result) == result.fid
    assert compute_fid(crops, crops, PooledColour(), min_images=20).fid == pytest.approx(
        0, abs=1e-9
    )
    # Batches of any size, or uint8 arrays, give the same value.
    batches = [darker[:5], darker[5:17], darker[17:]]
    assert compute_fid(crops, batches, PooledColour(), min_images=20).fid == pytest.approx(
        result.fid, rel=1e-9
    )
    as_uint8 = (crops * 255).round().byte().permute(0, 2, 3, 1).numpy()
    from_uint8 = compute_fid(as_uint8, darker, PooledColour(), min_images=20)
    assert from_uint8.fid == pytest.approx(result.fid, rel=1e-4)


def test_fid_warns_with_few_images_and_states_the_count(crops):
    with pytest.warns(FIDSampleSizeWarning, match="FID from 40 real and 40 generated images"):
        result = compute_fid(crops, crops * 0.7, PooledColour())
    assert "fewer than 2048" in result.label
    with pytest.warns(FIDSampleSizeWarning, match="covariance singular below 13"):
        compute_fid(crops[:10], crops[:10], PooledColour(), min_images=5)


def test_fid_metric_accumulates_and_resets(crops):
    metric = FIDMetric(PooledColour(), min_images=20)
    for start in range(0, 40, 10):
        metric.update(real=crops[start : start + 10], fake=crops[start : start + 10] * 0.7)
    assert metric.counts == (40, 40)
    assert metric.compute().fid == pytest.approx(
        compute_fid(crops, crops * 0.7, PooledColour(), min_images=20).fid, rel=1e-9
    )
    metric.reset()
    assert metric.counts == (0, 0)
    with pytest.raises(ValueError, match="at least 2 real and 2 generated images, got 0 and 0"):
        metric.compute()


def test_fid_metric_features_computed_once_serve_several_metrics(crops):
    shared = FIDMetric(PooledColour(), min_images=20)
    real = shared.features(crops)
    assert real.shape == (40, 12)
    for factor in (0.7, 0.9):
        metric = FIDMetric(PooledColour(), min_images=20)
        metric.add_features(real=real, fake=metric.features(crops * factor))
        assert metric.counts == (40, 40)
        assert metric.compute().fid == pytest.approx(
            compute_fid(crops, crops * factor, PooledColour(), min_images=20).fid, rel=1e-9)
    with pytest.raises(ValueError, match=r"real: got \(40,\); expected a features array"):
        shared.add_features(real=real[:, 0])


def test_fid_bad_extractors_and_arguments(crops):
    with pytest.raises(TypeError, match="feature_extractor: got int"):
        FIDMetric(3)
    with pytest.raises(
        ValueError, match=r"feature_extractor returned .* expected a tensor \(4, D\)"
    ):
        FIDMetric(lambda x: x.mean(dim=(1, 2, 3))).update(real=crops[:4])
    with pytest.raises(ValueError, match="batch_size: got 0"):
        compute_fid(crops, crops, PooledColour(), batch_size=0)
    with pytest.raises(ValueError, match=r"real_images: got an array of shape \(48, 48, 3\)"):
        compute_fid(np.zeros((48, 48, 3), np.uint8), crops, PooledColour())


# ----------------------------------------------------------------------------------------------
# FID's Inception-v3


def _seeded_inception() -> FIDInceptionV3:
    """FIDInceptionV3 with random weights that keep activations O(1) through all its layers."""
    torch.manual_seed(0)
    model = FIDInceptionV3()
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.normal_(m.bias, 0, 0.1)
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2)
    return model.eval()


def test_fid_inception_without_weights_fails_naming_the_file(monkeypatch, tmp_path):
    checkpoints = _offline(monkeypatch, tmp_path)
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        load_fid_inception()
    assert time.perf_counter() - start < 1  # checked before the network is built
    message = str(info.value)
    print(message)  # what a user sees
    assert str(checkpoints / FID_WEIGHTS_FILE) in message and metrics.FID_WEIGHTS_URL in message
    with pytest.raises(FileNotFoundError, match=FID_WEIGHTS_FILE):
        FIDMetric()  # the default extractor: never a random Inception


def test_fid_inception_loads_file_and_gives_2048_features(monkeypatch, tmp_path):
    checkpoints = _offline(monkeypatch, tmp_path)
    reference = _seeded_inception()
    checkpoints.mkdir(parents=True)
    # Half precision halves the temporary file; the loader copies into float32 parameters.
    torch.save(
        {
            k: v.half() if v.is_floating_point() else v
            for k, v in reference.net.state_dict().items()
        },
        checkpoints / FID_WEIGHTS_FILE,
    )
    model = load_fid_inception()
    assert not model.training and model.comparable and model.feature_dim == 2048
    torch.testing.assert_close(
        model.net.Mixed_7c.branch_pool.conv.weight,
        reference.net.Mixed_7c.branch_pool.conv.weight.half().float(),
    )
    images = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    features = model(images)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, bad)
    with pytest.raises(ValueError, match="bad.pth: not the FID Inception-v3 state dict"):
        load_fid_inception(bad)


def test_fid_inception_matches_pytorch_fid_architecture(monkeypatch):
    inception = pytest.importorskip("pytorch_fid.inception")
    ours = _seeded_inception()
    # pytorch-fid downloads its weights inside fid_inception_v3(); hand it ours instead.
    monkeypatch.setattr(
        inception, "load_state_dict_from_url", lambda *args, **kwargs: ours.net.state_dict()
    )
    theirs = inception.InceptionV3([inception.InceptionV3.DEFAULT_BLOCK_INDEX]).eval()
    images = torch.rand(2, 3, 64, 80, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = theirs(images)[0].flatten(1)  # (2, 2048)
        got = ours(images)
    assert expected.abs().mean() > 1e-2  # activations are not vanishing: the check has teeth
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


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
    with pytest.raises(ValueError, match=r"mask: got shape \(1, 1, 16, 16\); expected \(1, 1, 32, 32\)"):
        hole_colour_error(image, torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="mask: got values other than 0 and 1"):
        hole_colour_error(image, torch.full((1, 1, 32, 32), 2.0))
