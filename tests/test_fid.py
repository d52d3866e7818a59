"""bidsnet_lib.fid: the Fréchet distance against closed forms and scipy, FID with a small
deterministic extractor, and FID's Inception-v3 (loading, and against pytorch-fid's)."""

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from bidsnet_lib import fid, metrics
from bidsnet_lib.fid import (
    FID_WEIGHTS_FILE,
    FIDInceptionV3,
    FIDMetric,
    FIDSampleSizeWarning,
    compute_fid,
    feature_statistics,
    frechet_distance,
    load_fid_inception,
)

IMAGES = Path(__file__).resolve().parents[1] / "data" / "images"


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
    with pytest.raises(ValueError, match=r"real: got \(40,\), expected a features array"):
        shared.add_features(real=real[:, 0])


def test_fid_bad_extractors_and_arguments(crops):
    with pytest.raises(TypeError, match="feature_extractor: got int"):
        FIDMetric(3)
    with pytest.raises(
        ValueError, match=r"feature_extractor: got .* images, expected a tensor \(4, D\)"
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


def test_fid_inception_without_weights_fails_naming_the_file(hub_checkpoints):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        load_fid_inception()
    assert time.perf_counter() - start < 1  # checked before the network is built
    message = str(info.value)
    print(message)  # what a user sees
    assert str(hub_checkpoints / FID_WEIGHTS_FILE) in message and fid.FID_WEIGHTS_URL in message
    with pytest.raises(FileNotFoundError, match=FID_WEIGHTS_FILE):
        FIDMetric()  # the default extractor: never a random Inception


def test_fid_inception_loads_file_and_gives_2048_features(hub_checkpoints, tmp_path):
    reference = _seeded_inception()
    hub_checkpoints.mkdir(parents=True)
    # Half precision halves the temporary file; the loader copies into float32 parameters.
    torch.save(
        {
            k: v.half() if v.is_floating_point() else v
            for k, v in reference.net.state_dict().items()
        },
        hub_checkpoints / FID_WEIGHTS_FILE,
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


def test_fid_names_live_in_fid_and_score_random_inception_features():
    public = ("FIDInceptionV3", "FIDMetric", "FIDResult", "FIDSampleSizeWarning", "compute_fid",
              "feature_statistics", "frechet_distance", "load_fid_inception")
    assert all(getattr(fid, name).__module__ == "bidsnet_lib.fid" for name in public)
    assert not any(hasattr(metrics, name) for name in (*public, "FID_WEIGHTS_FILE", "FID_MIN_IMAGES"))
    g = torch.Generator().manual_seed(4)
    real, fake = torch.rand(3, 3, 32, 32, generator=g), torch.rand(3, 3, 32, 32, generator=g) * 0.5
    with pytest.warns(FIDSampleSizeWarning, match="covariance singular below 2049"):
        result = compute_fid(real, fake, _seeded_inception(), min_images=2)
    assert isinstance(result, fid.FIDResult) and (result.n_real, result.feature_dim) == (3, 2048)
    assert np.isfinite(result.fid) and result.fid > 0
