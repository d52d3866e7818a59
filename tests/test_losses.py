"""bidsnet_lib.losses: toy values, zero on identical inputs, the critic, the weighted sum, gradients."""

import dataclasses
import math
import typing
import warnings

import pytest
import torch
import torch.nn.functional as F

from bidsnet_lib import losses, metrics
from bidsnet_lib.losses import (
    LOSS_TERMS,
    GeneratorLoss,
    LossConfig,
    PatchDiscriminator,
    discriminator_loss,
    fake_labels,
    feature_matching_loss,
    generator_adversarial_loss,
    gram_matrix,
    perceptual_loss,
    pixel_l1,
    ssim_loss,
    style_loss,
)
from bidsnet_lib.vgg import (
    PERCEPTUAL_LAYERS,
    STYLE_LAYERS,
    VGG19_FILE,
    RandomWeightsWarning,
    load_vgg19_features,
)


def random_vgg(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return load_vgg19_features("random", **kwargs)


@pytest.fixture(scope="module")
def vgg():
    return random_vgg()


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 32, 32, generator=g)
    pred = torch.rand(2, 3, 32, 32, generator=g)
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:20, 10:26] = 1
    return pred, target, mask


# ---------------------------------------------------------------------------------------------
# Pixel L1


def test_pixel_l1_hand_computed_2x2():
    target = torch.zeros(1, 3, 2, 2)
    pred = torch.zeros(1, 3, 2, 2)
    pred[0, :, 0, 0] = 1.0  # hole pixel, error 1 in 3 channels
    pred[0, :, 1, 1] = -0.5  # valid pixel, error 0.5 in 3 channels
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    hole, valid = pixel_l1(pred, target, mask)
    # Both divided by all 12 elements (PConv's normalisation), not by their own pixel counts.
    assert hole.item() == pytest.approx(3 * 1.0 / 12)
    assert valid.item() == pytest.approx(3 * 0.5 / 12)


def test_pixel_l1_zero_for_identical_and_accepts_bool_mask(batch):
    _, target, mask = batch
    hole, valid = pixel_l1(target, target, mask.bool())
    assert hole.item() == 0 and valid.item() == 0


def test_pixel_l1_rejects_bad_shapes(batch):
    pred, target, mask = batch
    with pytest.raises(
        ValueError, match=r"mask: got shape \(2, 3, 32, 32\), expected \(B, 1, H, W\)"
    ):
        pixel_l1(pred, target, target)
    with pytest.raises(ValueError, match="target: got shape .* but pred has B, H, W"):
        pixel_l1(pred, target[:, :, :16], mask)
    with pytest.raises(TypeError, match="pred: got ndarray"):
        pixel_l1(pred.numpy(), target, mask)


# ---------------------------------------------------------------------------------------------
# Gram, perceptual, style


def test_gram_matrix_hand_computed():
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, C=2, H=1, W=2)
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / (2 * 1 * 2)
    torch.testing.assert_close(gram_matrix(f), expected)


def test_gram_matrix_is_float32_under_half_inputs():
    f = torch.full((1, 4, 8, 8), 300.0, dtype=torch.float16)  # 300² · 64 overflows fp16
    g = gram_matrix(f)
    assert g.dtype == torch.float32 and torch.isfinite(g).all()


def test_style_and_perceptual_hand_computed():
    a = {"x": torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])}
    b = {"x": torch.zeros(1, 2, 1, 2)}
    # Gram of a is [[5, 11], [11, 25]] / 4; of b zero; L1 mean over 4 entries = 52 / 16.
    assert style_loss(a, b, layers=("x",)).item() == pytest.approx(52 / 16)
    assert perceptual_loss(a, b, layers=("x",)).item() == pytest.approx(10 / 4)


def test_vgg_features_shapes_and_zero_losses_for_identical(vgg, batch):
    _, target, _ = batch
    feats = vgg(target)
    assert set(feats) == set(PERCEPTUAL_LAYERS + STYLE_LAYERS)
    assert feats["relu1_1"].shape == (2, 64, 32, 32)
    assert feats["relu5_2"].shape == (2, 512, 2, 2)
    assert perceptual_loss(feats, vgg(target)).item() == 0
    assert style_loss(feats, vgg(target)).item() == 0


# ---------------------------------------------------------------------------------------------
# Discriminator and adversarial losses


class ConstantCritic(PatchDiscriminator):
    """Logits fixed at `value` (shape of the real critic's output): for hand-computed losses."""

    def __init__(self, value):
        super().__init__(channels=4)
        self.value = value

    def forward(self, image, mask=None):
        return super().forward(image, mask) * 0 + self.value


class LinearCritic(PatchDiscriminator):
    """D(x) = Σ w·x, one logit per image: R1's penalty is then exactly ‖w‖²."""

    def __init__(self, w):
        super().__init__(with_mask=False, channels=4)
        self.w = w

    def forward(self, image, mask=None):
        return (image * self.w).sum(dim=(1, 2, 3)).view(-1, 1, 1, 1)


def test_discriminator_shape_and_receptive_field():
    D = PatchDiscriminator()
    assert D.receptive_field == 70  # pix2pix's 70×70 PatchGAN
    logits = D(torch.rand(2, 3, 256, 256), torch.zeros(2, 1, 256, 256))
    assert logits.shape == (2, 1, 30, 30)
    assert PatchDiscriminator(n_layers=2, with_mask=False)(torch.rand(1, 3, 64, 64)).shape == (
        1,
        1,
        14,
        14,
    )
    assert any("parametrizations" in name for name, _ in D.named_parameters())  # spectral norm
    with pytest.raises(ValueError, match="mask: got None"):
        D(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="channels: got 0"):
        PatchDiscriminator(channels=0)


def test_fake_labels_are_the_hole_share_under_each_logit():
    logits = torch.zeros(1, 1, 4, 4)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :, :16] = 1  # left half is hole
    mask[..., 0:8, 16:20] = 1  # half of the cell at row 0, column 2
    expected = torch.tensor([[1, 1, 0.5, 0]] + [[1, 1, 0, 0]] * 3).view(1, 1, 4, 4)
    torch.testing.assert_close(fake_labels(mask, logits), expected)
    D = PatchDiscriminator(channels=4)
    logits = D(torch.rand(2, 3, 64, 64), torch.zeros(2, 1, 64, 64))
    assert fake_labels(torch.ones(2, 1, 64, 64), logits).shape == logits.shape == (2, 1, 6, 6)


@pytest.mark.parametrize("gan_loss", ["nonsaturating", "hinge"])
def test_discriminator_loss_hand_computed(gan_loss, batch):
    _, target, mask = batch
    cfg = LossConfig(gan_loss=gan_loss, r1=0.0, mask_aware_labels=False)
    loss, logs = discriminator_loss(ConstantCritic(0.0), target, target, mask, cfg)
    expected = 2 * math.log(2) if gan_loss == "nonsaturating" else 2.0
    assert loss.item() == pytest.approx(expected)
    assert "r1" not in logs and logs["d_total"].item() == pytest.approx(expected)
    # A critic sure of the right answer has near-zero (hinge: exactly zero) loss on that side.
    assert discriminator_loss(ConstantCritic(10.0), target, target, mask, cfg)[1]["d_real"] < 1e-4
    assert discriminator_loss(ConstantCritic(-10.0), target, target, mask, cfg)[1]["d_fake"] < 1e-4


def test_mask_aware_labels_call_unseen_patches_real(batch):
    _, target, mask = batch
    cfg = LossConfig(r1=0.0)
    D = ConstantCritic(5.0)  # says "real" everywhere
    _, aware = discriminator_loss(D, target, target, torch.zeros_like(mask), cfg)
    _, classic = discriminator_loss(
        D, target, target, torch.zeros_like(mask), LossConfig(r1=0.0, mask_aware_labels=False)
    )
    assert aware["d_fake"].item() == pytest.approx(
        F.softplus(torch.tensor(-5.0)).item()
    )  # no hole: all real
    assert classic["d_fake"].item() == pytest.approx(F.softplus(torch.tensor(5.0)).item())
    half = torch.zeros_like(mask)
    half[..., :16] = 1  # labels: 1 over the left half, 0 over the right
    _, logs = discriminator_loss(D, target, target, half, cfg)
    expected = 0.5 * (F.softplus(torch.tensor(5.0)) + F.softplus(torch.tensor(-5.0)))
    assert logs["d_fake"].item() == pytest.approx(expected.item(), rel=1e-4)


def test_r1_penalty_equals_squared_weight_norm(batch):
    _, target, mask = batch
    w = torch.randn(1, 3, 32, 32)
    cfg = LossConfig(r1=0.5, mask_aware_labels=False)
    loss, logs = discriminator_loss(LinearCritic(w), target, target, mask, cfg)
    assert logs["r1"].item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)
    assert loss.item() == pytest.approx(
        logs["d_real"].item() + logs["d_fake"].item() + 0.5 * logs["r1"].item(), rel=1e-5
    )


def test_discriminator_loss_gradients_reach_critic_not_generator(batch):
    pred, target, mask = batch
    pred = pred.clone().requires_grad_(True)
    comp = pred * mask + target * (1 - mask)
    D = PatchDiscriminator(channels=8, n_layers=2)
    loss, logs = discriminator_loss(D, target, comp, mask)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in D.parameters())
    assert pred.grad is None  # the fake is detached
    assert math.isfinite(logs["r1"].item()) and logs["r1"].item() >= 0
    assert logs["d_total"].item() == pytest.approx(2 * math.log(2), abs=0.1)  # near chance at init


@pytest.mark.parametrize("gan_loss", ["nonsaturating", "hinge"])
def test_generator_adversarial_loss_values_and_gradient(gan_loss, batch):
    pred, target, mask = batch
    value = generator_adversarial_loss(ConstantCritic(2.0), target, mask, gan_loss)
    expected = F.softplus(torch.tensor(-2.0)).item() if gan_loss == "nonsaturating" else -2.0
    assert value.item() == pytest.approx(expected)
    pred = pred.clone().requires_grad_(True)
    D = PatchDiscriminator(channels=8, n_layers=2)
    generator_adversarial_loss(D, pred * mask + target * (1 - mask), mask, gan_loss).backward()
    assert pred.grad[mask.expand_as(pred) == 1].abs().sum() > 0
    assert (
        pred.grad[mask.expand_as(pred) == 0].abs().sum() == 0
    )  # the composite's known part is fixed
    with pytest.raises(ValueError, match="gan_loss: got 'wgan'"):
        generator_adversarial_loss(D, pred, mask, "wgan")


# ---------------------------------------------------------------------------------------------
# Feature matching on the critic's features


def test_critic_features_are_its_hidden_layers_and_lead_to_its_logits():
    D = PatchDiscriminator(channels=8, n_layers=2)
    image, mask = torch.rand(2, 3, 32, 32), torch.zeros(2, 1, 32, 32)
    logits, features = D.eval()(image, mask, return_features=True)  # eval: the same weights each call
    assert [tuple(f.shape) for f in features] == [(2, 8, 16, 16), (2, 16, 8, 8), (2, 32, 7, 7)]
    torch.testing.assert_close(logits, D(image, mask))
    torch.testing.assert_close(logits, D.net[-1](features[-1]))  # the last conv of the last feature map


def test_hole_reach_marks_exactly_the_features_that_see_the_hole():
    torch.manual_seed(0)
    D = PatchDiscriminator(channels=8, n_layers=2)
    image = torch.rand(1, 3, 32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 3:7, 20:29] = 1
    changed = image + mask * torch.rand(1, 3, 32, 32)  # other pixels in the hole only
    _, features = D(torch.cat([image, changed]), torch.cat([mask, mask]), return_features=True)
    reach = D.hole_reach(mask)
    assert [r.shape[-2:] for r in reach] == [f.shape[-2:] for f in features]
    assert all(torch.equal(a, b) for a, b in zip(D.hole_reach(mask.bool()), reach, strict=True))
    for feature, seen in zip(features, reach, strict=True):
        before, after = feature.chunk(2)
        moved = ((after - before).abs().amax(1, keepdim=True) > 0).float()  # (1, 1, h_l, w_l)
        torch.testing.assert_close(moved, seen, rtol=0, atol=0)  # neither more nor fewer
        assert 0 < seen.mean() < 1


def test_feature_matching_is_zero_on_the_photo_and_trains_only_the_hole(batch):
    pred, target, mask = batch
    D = PatchDiscriminator(channels=8, n_layers=2)
    assert feature_matching_loss(D, target, target, mask).item() == 0
    pred = pred.clone().requires_grad_(True)
    real = target.clone().requires_grad_(True)  # to catch a gradient through the real branch
    value = feature_matching_loss(D, real, pred * mask + real.detach() * (1 - mask), mask)
    assert value.item() > 0
    value.backward()
    assert pred.grad[mask.expand_as(pred) == 1].abs().sum() > 0
    assert pred.grad[mask.expand_as(pred) == 0].abs().sum() == 0  # the composite's known part is fixed
    assert not real.grad.any()  # the photo's features are the target, detached: no gradient through them
    with pytest.raises(ValueError, match=r"comp: got shape \(2, 1, 32, 32\)"):
        feature_matching_loss(D, target, mask, mask)


def test_feature_matching_counts_only_what_the_critic_saw_of_the_hole():
    torch.manual_seed(0)
    D = PatchDiscriminator(channels=8, n_layers=2).eval()  # eval: the same weights each call
    target = torch.rand(1, 3, 32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :6, :6] = 1  # rows and columns 0-5; the deepest features see 22 px: up to 26
    comp = target + mask * 0.5
    region = torch.zeros_like(mask)
    region[..., 28:, 28:] = 1
    far = comp * (1 - region)  # a change in the bottom-right corner
    for sees_hole, sees_change in zip(D.hole_reach(mask), D.hole_reach(region), strict=True):
        assert not (sees_hole * sees_change).any()  # no feature sees both
    torch.testing.assert_close(feature_matching_loss(D, target, far, mask),
                               feature_matching_loss(D, target, comp, mask), rtol=0, atol=0)
    everywhere = torch.ones_like(mask)  # every feature counted: the far change shows
    assert feature_matching_loss(D, target, far, everywhere) > feature_matching_loss(D, target, comp, everywhere)


# ---------------------------------------------------------------------------------------------
# Config and GeneratorLoss


def test_config_defaults_presets_and_validation():
    cfg = LossConfig()
    assert (cfg.valid, cfg.hole, cfg.adversarial, cfg.perceptual, cfg.style, cfg.r1) == (
        1,
        6,
        0.1,
        0.1,
        250,
        0.001,
    )
    assert cfg.vgg_weights == "imagenet" and LossConfig.paper() == cfg
    assert LossConfig.small().vgg_weights == "random"
    assert LossConfig.small().style == cfg.style
    assert LossConfig.pixel_only().term_weights() == {
        "valid": 1,
        "hole": 6,
        "adversarial": 0,
        "perceptual": 0,
        "style": 0,
        "ssim": 0,
        "feature_matching": 0,
    }
    with pytest.raises(ValueError, match=r"ssim: got -0.5, expected a finite number >= 0"):
        LossConfig(ssim=-0.5)
    with pytest.raises(ValueError, match=r"hole: got -1, expected a finite number >= 0"):
        LossConfig(hole=-1)
    with pytest.raises(ValueError, match="style: got nan"):
        LossConfig(style=float("nan"))
    with pytest.raises(
        ValueError, match=r"gan_loss: got 'lsgan', expected one of \['hinge', 'nonsaturating'\]"
    ):
        LossConfig(gan_loss="lsgan")
    with pytest.raises(TypeError, match="vgg_weights: got NoneType"):
        LossConfig(vgg_weights=None)
    with pytest.raises(TypeError, match="mask_aware_labels: got 'yes'"):
        LossConfig(mask_aware_labels="yes")
    assert cfg.feature_matching == 0  # off unless asked for: nothing that exists changes
    with pytest.raises(ValueError, match=r"feature_matching: got 1.0, expected 0 while adversarial is 0: "
                                         r"it compares the critic's features.* give adversarial > 0 too"):
        LossConfig(adversarial=0.0, feature_matching=1.0)
    with pytest.raises(ValueError, match=r"feature_matching: got -1.0, expected a finite number >= 0"):
        LossConfig(feature_matching=-1.0)


def test_loss_terms_are_the_weight_fields_of_the_config(batch):
    """One list of the terms: each weight field once, the generator's keyed as in the logs."""
    assert LOSS_TERMS == {"valid": "generator", "hole": "generator", "adversarial": "generator",
                          "perceptual": "generator", "style": "generator", "r1": "critic", "ssim": "generator",
                          "feature_matching": "generator"}
    assert set(LOSS_TERMS) == {name for name, hint in typing.get_type_hints(LossConfig).items() if hint is float}
    every = LossConfig(vgg_weights="random", ssim=1.0, feature_matching=1.0)
    pred, target, mask = batch
    _, logs = GeneratorLoss(every)(pred, pred, target, mask, PatchDiscriminator(channels=8, n_layers=2))
    assert set(logs) - {"total"} == set(every.term_weights()) == {n for n, t in LOSS_TERMS.items() if t == "generator"}


def test_generator_loss_pixel_only_never_loads_vgg(monkeypatch, batch):
    monkeypatch.setattr(losses, "load_vgg19_features", lambda *a, **k: pytest.fail("VGG loaded"))
    loss = GeneratorLoss(LossConfig.pixel_only())
    pred, target, mask = batch
    total, logs = loss(pred, pred, target, mask)
    assert loss.weights_source is None and set(logs) == {"hole", "valid", "total"}
    assert total.item() == pytest.approx(6 * logs["hole"].item() + logs["valid"].item())


def test_generator_loss_zero_for_identical_without_critic(vgg, batch):
    _, target, mask = batch
    loss = GeneratorLoss(LossConfig(adversarial=0.0, vgg_weights="random"), vgg=vgg)
    total, logs = loss(target, target, target, mask)
    assert total.item() == 0 and set(logs) == {"hole", "valid", "perceptual", "style", "total"}


def test_generator_loss_total_is_weighted_sum_and_gradients_flow(vgg, batch):
    pred, target, mask = batch
    pred = pred.clone().requires_grad_(True)
    cfg = dataclasses.replace(LossConfig.small(), ssim=0.5, feature_matching=2.0)  # every term on
    loss = GeneratorLoss(cfg, vgg=vgg)
    D = PatchDiscriminator(channels=8, n_layers=2)
    comp = pred * mask + target * (1 - mask)
    total, logs = loss(pred, comp, target, mask, D)
    weights = cfg.term_weights()
    assert set(logs) == set(weights) | {"total"} and loss.weights_source == "random"
    expected = sum(weights[k] * logs[k] for k in weights)
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())  # frozen
    with pytest.raises(ValueError, match="discriminator: got None, but config.adversarial > 0"):
        loss(pred, comp, target, mask)
    with pytest.raises(ValueError, match=r"comp: got shape \(2, 1, 32, 32\)"):
        loss(pred, mask, target, mask, D)
    with pytest.raises(ValueError, match=r"vgg: lacks the layers \['relu2_2'"):
        GeneratorLoss(
            cfg, vgg=random_vgg(layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"))
        )
    with pytest.raises(TypeError, match="config: got dict"):
        GeneratorLoss({"hole": 6})


def test_ssim_loss_is_one_minus_the_evaluation_ssim_and_reaches_only_the_hole(batch):
    pred, target, mask = batch
    pred = pred.clone().requires_grad_(True)
    comp = pred * mask + target * (1 - mask)
    value = ssim_loss(comp, target)
    assert value.item() == pytest.approx(1 - metrics.ssim(comp, target).mean().item(), abs=1e-6)
    assert 0 < value.item() < 1 and ssim_loss(target, target).item() == pytest.approx(0, abs=1e-6)
    value.backward()
    assert pred.grad[mask.expand_as(pred) == 0].abs().max() == 0  # the known pixels are the input's
    assert pred.grad[mask.expand_as(pred) == 1].abs().sum() > 0
    # Off by default: no "ssim" term unless it has a weight.
    _, logs = GeneratorLoss(LossConfig.pixel_only())(pred.detach(), comp.detach(), target, mask)
    assert "ssim" not in logs


def test_generator_loss_loads_the_configured_weights(hub_checkpoints):
    with pytest.raises(FileNotFoundError, match=VGG19_FILE):
        GeneratorLoss(LossConfig())
