"""The training losses of BIDS-Net: pixel L1, adversarial, VGG-19 perceptual and style.

Taught in ``notebooks/05_losses.ipynb``. The generator minimises

    L = w_valid·L_valid + w_hole·L_hole + w_adv·L_adv + w_perc·L_perc + w_style·L_style

(:class:`GeneratorLoss`), optionally plus SSIM and feature matching on the critic's features;
a spectral-norm PatchGAN (:class:`PatchDiscriminator`) is trained against it with
:func:`discriminator_loss`. Masks follow the course convention: 1 = hole.

The perceptual and style losses compare VGG-19 features from :mod:`bidsnet_lib.vgg`, whose
pretrained weights are loaded only when asked; a random backbone needs ``vgg_weights="random"``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from bidsnet_lib.metrics import ssim
from bidsnet_lib.plumbing import check_choice, check_finite_float, check_positive_int, got_expected
from bidsnet_lib.vgg import PERCEPTUAL_LAYERS, STYLE_LAYERS, VGG19Features, load_vgg19_features

# ----------------------------------------------------------------------------------------------
# Pixel reconstruction


def pixel_l1(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """L1 on hole and on valid pixels, each summed and divided by ALL elements B·C·H·W (as PConv).

    Dividing by all elements, not by the hole's own pixel count, keeps PConv's published weights
    (hole 6, valid 1) meaningful and makes a bigger hole weigh more. Returns (hole, valid).
    """
    _check_images(pred=pred, target=target, mask=mask)
    mask = mask.to(pred.dtype)  # bool masks too
    error = (pred - target).abs()  # (B, 3, H, W)
    count = error.numel()
    hole = (error * mask).sum() / count
    valid = (error * (1 - mask)).sum() / count
    return hole, valid


# ----------------------------------------------------------------------------------------------
# Perceptual and style losses on VGG-19 features (bidsnet_lib.vgg)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C): F Fᵀ / (C·H·W), computed in float32 (fp16 overflows here)."""
    b, c, h, w = features.shape
    f = features.float().reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def perceptual_loss(feats_pred: dict, feats_target: dict, layers=PERCEPTUAL_LAYERS) -> torch.Tensor:
    """Σ_l mean |φ_l(pred) − φ_l(target)| over the given layers (EdgeConnect: weight 1 each)."""
    return sum(F.l1_loss(feats_pred[name], feats_target[name]) for name in layers)


def style_loss(feats_pred: dict, feats_target: dict, layers=STYLE_LAYERS) -> torch.Tensor:
    """Σ_l mean |G(φ_l(pred)) − G(φ_l(target))| with G the normalised Gram matrix."""
    return sum(
        F.l1_loss(gram_matrix(feats_pred[name]), gram_matrix(feats_target[name])) for name in layers
    )


# ----------------------------------------------------------------------------------------------
# Adversarial: spectral-norm PatchGAN, non-saturating (or hinge) loss, R1, mask-aware labels


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix's 70×70 for n_layers=3) with spectral norm on every conv, no norm layers.

    Input: the image and, when ``with_mask`` (default), the mask as a 4th channel — as DeepFill
    v2's SN-PatchGAN: the hole's place is no secret at test time, so the critic may spend its
    capacity judging the hole's content against its surroundings rather than finding it; the real
    image is shown with the same mask, so the mask alone tells nothing. Output: (B, 1, h, w)
    logits, one per overlapping patch of ``receptive_field`` pixels.
    """

    def __init__(
        self, in_channels: int = 3, with_mask: bool = True, channels: int = 64, n_layers: int = 3
    ):
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("channels", channels),
            ("n_layers", n_layers),
        ):
            check_positive_int(name, value)
        self.with_mask = with_mask
        # (kernel, stride, padding) of each conv: n_layers halvings, then two stride-1 convs.
        self.geometry = [(4, 2, 1)] * n_layers + [(4, 1, 1), (4, 1, 1)]
        widths = [channels * min(2**i, 8) for i in range(n_layers + 1)] + [1]
        layers, in_ch = [], in_channels + int(with_mask)
        for (k, s, p), out_ch in zip(self.geometry, widths, strict=True):
            layers.append(spectral_norm(nn.Conv2d(in_ch, out_ch, k, s, p)))
            if out_ch != 1:
                layers.append(nn.LeakyReLU(0.2))
            in_ch = out_ch
        self.net = nn.Sequential(*layers)

    @property
    def receptive_field(self) -> int:
        """Side in pixels of the input patch each output logit sees."""
        field = 1
        for k, s, _ in reversed(self.geometry):
            field = field * s + (k - s)
        return field

    def forward(self, image: torch.Tensor, mask: torch.Tensor | None = None, return_features: bool = False):
        """(B, C, H, W) image [+ (B, 1, H, W) mask] -> (B, 1, h, w) patch logits; with
        ``return_features``, (logits, features): each hidden layer's activation (after its
        LeakyReLU), first to last, as :func:`feature_matching_loss` compares them."""
        if self.with_mask:
            if mask is None:
                raise ValueError(
                    "mask: got None, but this discriminator was built with with_mask=True"
                )
            image = torch.cat([image, mask.to(image.dtype)], dim=1)  # (B, C+1, H, W)
        x, features = image, []
        for layer in self.net:
            x = layer(x)
            if return_features and isinstance(layer, nn.LeakyReLU):
                features.append(x)  # (B, C_l, h_l, w_l)
        return (x, features) if return_features else x

    def hole_reach(self, mask: torch.Tensor) -> list[torch.Tensor]:
        """(B, 1, H, W) hole mask -> for each hidden layer, (B, 1, h_l, w_l): 1 where that
        feature's receptive field holds a hole pixel, else 0 (for a soft mask, its largest value).

        Max pooling with each conv's own (kernel, stride, padding) marks exactly those positions:
        a position's pooling window is its conv window, and neither padding brings in a hole.
        Area interpolation onto the feature grid would mark only the cells over the hole (the
        rule of :func:`fake_labels`) and miss the features beside it whose fields see into it:
        where a seam shows.
        """
        reach, out = mask if mask.is_floating_point() else mask.float(), []  # bool masks too
        for kernel, stride, padding in self.geometry[:-1]:  # the last conv gives the logits
            reach = F.max_pool2d(reach, kernel, stride, padding)  # (B, 1, h_l, w_l)
            out.append(reach)
        return out


def fake_labels(mask: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) hole mask -> (B, 1, h, w): the share of hole pixels under each patch logit.

    The mask is area-averaged onto the logit grid, so a logit is labelled by the image cell it
    sits over (soft labels at the hole's edge), LaMa-style. Not by its whole receptive field:
    70-pixel fields touch some hole almost everywhere, which would label every patch fake.
    """
    return F.adaptive_avg_pool2d(mask.to(logits.dtype), logits.shape[-2:])


# name -> (loss on logits the critic should call real, on logits it should call fake, the
# generator's loss on its own fakes), each per patch.
GAN_LOSSES = {
    # -log σ(x), -log(1 - σ(x)), -log σ(x): EdgeConnect's and LaMa's choice; pairs with R1.
    "nonsaturating": (lambda x: F.softplus(-x), F.softplus, lambda x: F.softplus(-x)),
    # max(0, 1 - x), max(0, 1 + x), -x: SN-PatchGAN's (DeepFill v2) choice.
    "hinge": (lambda x: F.relu(1 - x), lambda x: F.relu(1 + x), lambda x: -x),
}


def discriminator_loss(
    D: PatchDiscriminator,
    real: torch.Tensor,
    fake: torch.Tensor,
    mask: torch.Tensor,
    config: LossConfig | None = None,
) -> tuple[torch.Tensor, dict]:
    """The critic's loss: real patches → real, fake patches → fake, plus ``config.r1``·E‖∇ₓ Σ D(x)‖².

    With ``config.mask_aware_labels`` (LaMa's idea) a fake patch is called fake in proportion to
    the hole under it (:func:`fake_labels`) and real elsewhere: outside the hole a composite *is*
    the real photo, and asking the critic to call it fake there only teaches it noise. R1 is
    taken on the real images.

    ``fake`` is the composited output; it is detached here. Returns (loss, logs of detached
    0-dim tensors). Call with gradients enabled: R1 differentiates through D.
    """
    config = config or LossConfig()
    _check_images(real=real, fake=fake, mask=mask)
    as_real, as_fake, _ = GAN_LOSSES[config.gan_loss]
    real = real.detach().requires_grad_(config.r1 > 0)
    logits_real = D(real, mask)  # (B, 1, h, w)
    logits_fake = D(fake.detach(), mask)
    loss_real = as_real(logits_real).mean()
    if config.mask_aware_labels:
        fake_label = fake_labels(mask, logits_fake)  # (B, 1, h, w), 1 = over the hole
        loss_fake = (
            fake_label * as_fake(logits_fake) + (1 - fake_label) * as_real(logits_fake)
        ).mean()
    else:
        loss_fake = as_fake(logits_fake).mean()
    total = loss_real + loss_fake
    logs = {
        "d_real": loss_real,
        "d_fake": loss_fake,
        "d_logit_real": logits_real.mean(),
        "d_logit_fake": logits_fake.mean(),
    }
    if config.r1 > 0:
        (grad,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
        penalty = grad.pow(2).flatten(1).sum(1).mean()
        total = total + config.r1 * penalty
        logs["r1"] = penalty
    logs["d_total"] = total
    return total, {k: v.detach() for k, v in logs.items()}


def generator_adversarial_loss(
    D: PatchDiscriminator, fake: torch.Tensor, mask: torch.Tensor, gan_loss: str = "nonsaturating"
) -> torch.Tensor:
    """The generator's adversarial term, mean over patches: softplus(−D) (non-saturating) or −D (hinge)."""
    check_choice("gan_loss", gan_loss, sorted(GAN_LOSSES))
    logits = D(fake, mask)  # (B, 1, h, w)
    return GAN_LOSSES[gan_loss][2](logits).mean()


def feature_matching_loss(
    D: PatchDiscriminator, real: torch.Tensor, comp: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Σ_l mean |D_l(comp) − D_l(real)| over the critic's hidden layers l, counted only where
    layer l's receptive field holds hole pixels (:meth:`PatchDiscriminator.hole_reach`).

    Feature matching (Wang et al. 2018, pix2pixHD; LaMa uses it too, on squared differences):
    besides "real or not", the generator learns which features the critic finds in the real
    photo, a dense target at every layer and position, which pix2pixHD found to stabilise GAN
    training. The real photo's features are detached: they are the target, not something to
    move. Each layer's mean is
    over all its elements, as :func:`pixel_l1`, so a bigger hole weighs more. On an exact
    composite the features out of the hole's reach are equal anyway (the critic is local and
    sees the same pixels and mask there); the restriction makes the term the hole's whatever
    ``comp`` holds outside it. The critic is not frozen here; the trainer freezes it for the
    generator's step.
    """
    _check_images(real=real, comp=comp, mask=mask)
    # One pass over both: in training mode spectral norm takes a power-iteration step at every
    # call, so two calls would compare features under two slightly different weights.
    _, features = D(torch.cat([real, comp]), torch.cat([mask, mask]), return_features=True)
    total = 0.0
    for feature, reach in zip(features, D.hole_reach(mask), strict=True):
        feature_real, feature_comp = feature.chunk(2)  # (B, C_l, h_l, w_l) each
        total = total + ((feature_comp - feature_real.detach()).abs() * reach).mean()
    return total


# ----------------------------------------------------------------------------------------------
# Configuration and the generator's total loss


@dataclass
class LossConfig:
    """Loss weights and choices. Defaults, with their provenance (each used as published):

    - ``valid`` 1, ``hole`` 6: Liu et al. 2018 (Partial Convolutions), with their normalisation —
      errors summed over the region, divided by all elements (see :func:`pixel_l1`).
    - ``perceptual`` 0.1, ``style`` 250: Nazeri et al. 2019 (EdgeConnect), with their layers
      (:data:`~bidsnet_lib.vgg.PERCEPTUAL_LAYERS`, :data:`~bidsnet_lib.vgg.STYLE_LAYERS`), L1
      means, Gram/(C·H·W), on the raw output.
    - ``adversarial`` 0.1: EdgeConnect (non-saturating loss, spectral-norm PatchGAN).
    - ``r1`` 0.001: Suvorov et al. 2022 (LaMa), squared gradient norm of the summed patch logits.
    - ``gan_loss`` "nonsaturating" (or "hinge"); ``mask_aware_labels`` True (LaMa): the critic
      calls fake only the patches over the hole (:func:`fake_labels`).
    - ``vgg_weights``: "imagenet", a state-dict path, or "random" (explicit; see
      :func:`bidsnet_lib.vgg.load_vgg19_features`).
    - ``ssim`` 0 (not in the paper): weight of 1 − SSIM of the composite (:func:`ssim_loss`), the
      metric the evaluation reports beside PSNR; Zhao et al. 2017 (IEEE TCI) show an L1 + SSIM
      mix beating L1 alone on SSIM without losing PSNR.
    - ``feature_matching`` 0 (not in the paper): weight of :func:`feature_matching_loss`, L1
      between the critic's features of the photo and of the composite (pix2pixHD weighs it 10,
      with its own normalisation).
      It needs the critic, so ``adversarial`` > 0.
    """

    # A weight's ``term`` metadata: "generator" for a term of GeneratorLoss's sum (logged under the
    # field's name), "critic" for the critic's penalty; ``help`` makes a field a `bidsnet train` flag.
    valid: float = field(default=1.0, metadata={"term": "generator", "help": "weight of the L1 on the known pixels"})
    hole: float = field(default=6.0, metadata={"term": "generator", "help": "weight of the L1 in the holes"})
    adversarial: float = field(default=0.1, metadata={
        "term": "generator", "help": "weight of the adversarial term (0: no critic)"})
    perceptual: float = field(default=0.1, metadata={
        "term": "generator", "help": "weight of the VGG-19 perceptual term"})
    style: float = field(default=250.0, metadata={"term": "generator", "help": "weight of the VGG-19 style term"})
    r1: float = field(default=0.001, metadata={
        "term": "critic", "help": "weight of the critic's R1 gradient penalty"})
    gan_loss: str = "nonsaturating"
    mask_aware_labels: bool = True
    vgg_weights: str = field(default="imagenet", metadata={
        "help": "VGG-19 weights for the perceptual and style losses", "metavar": "imagenet|random|PATH"})
    ssim: float = field(default=0.0, metadata={
        "term": "generator", "help": "weight of 1 - SSIM of the composite"})
    feature_matching: float = field(default=0.0, metadata={
        "term": "generator", "help": "weight of the L1 between the critic's features of the photo and "
                                     "of the composite, where they see the hole (needs --adversarial > 0)"})

    def __post_init__(self):
        for name in LOSS_TERMS:
            check_finite_float(name, getattr(self, name), 0)
        if not isinstance(self.mask_aware_labels, bool):
            raise TypeError(
                f"mask_aware_labels: got {self.mask_aware_labels!r}, expected True or False"
            )
        if self.feature_matching > 0 and self.adversarial == 0:
            raise ValueError(got_expected(
                "feature_matching", self.feature_matching,
                "0 while adversarial is 0: it compares the critic's features, and no critic is trained "
                "without an adversarial weight; give adversarial > 0 too (e.g. 0.1)"))
        check_choice("gan_loss", self.gan_loss, sorted(GAN_LOSSES))
        if not isinstance(self.vgg_weights, str | os.PathLike):
            raise TypeError(
                f"vgg_weights: got {type(self.vgg_weights).__name__}, expected 'imagenet', 'random' or a path"
            )
        self.vgg_weights = os.fspath(self.vgg_weights)  # plain data in checkpoints

    @classmethod
    def paper(cls) -> LossConfig:
        """The defaults, with ImageNet VGG-19 weights (Colab)."""
        return cls()

    @classmethod
    def small(cls) -> LossConfig:
        """The same weights on a random VGG-19 (CPU demos and tests without the 548 MB file)."""
        return cls(vgg_weights="random")

    @classmethod
    def pixel_only(cls) -> LossConfig:
        """Hole/valid L1 only: no VGG, no discriminator (overfitting checks, quick CPU runs)."""
        return cls(adversarial=0.0, perceptual=0.0, style=0.0, r1=0.0)

    def term_weights(self) -> dict[str, float]:
        """Weight of each named generator term, keyed as in :class:`GeneratorLoss`'s logs."""
        return {name: getattr(self, name) for name, term in LOSS_TERMS.items() if term == "generator"}


# The loss terms' one list: every weight field of LossConfig, by what it weighs ("generator" or
# "critic"). A new term is a field with "term" metadata here and its value in GeneratorLoss.forward.
LOSS_TERMS = {f.name: f.metadata["term"] for f in fields(LossConfig) if "term" in f.metadata}


def ssim_loss(comp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − mean SSIM (:func:`bidsnet_lib.metrics.ssim`, the evaluation's own) of the composite:
    0-dim. On the composite, so only the hole's pixels get gradient, through every SSIM window
    that overlaps the hole."""
    return 1 - ssim(comp, target).mean()


class GeneratorLoss(nn.Module):
    """The generator's weighted sum; VGG-19 is loaded only if a perceptual or style weight is > 0.

    ``forward(pred, comp, target, mask, discriminator)`` with images (B, 3, H, W) in [0, 1] and
    mask (B, 1, H, W): L1 on the raw ``pred``; perceptual and style on ``pred`` (EdgeConnect);
    adversarial and feature matching on the composite ``comp`` (what the critic is trained on),
    SSIM too. Returns (total, logs):
    the unweighted terms and "total", as detached 0-dim tensors.
    """

    def __init__(self, config: LossConfig | None = None, vgg: VGG19Features | None = None):
        super().__init__()
        if config is not None and not isinstance(config, LossConfig):
            raise TypeError(f"config: got {type(config).__name__}, expected a LossConfig")
        self.config = config or LossConfig()
        needs_vgg = self.config.perceptual > 0 or self.config.style > 0
        if not needs_vgg:
            self.vgg = None
        else:
            self.vgg = vgg if vgg is not None else load_vgg19_features(self.config.vgg_weights)
            missing = set(PERCEPTUAL_LAYERS + STYLE_LAYERS) - set(self.vgg.layers)
            if missing:
                raise ValueError(f"vgg: lacks the layers {sorted(missing)} the losses use")

    @property
    def weights_source(self) -> str | None:
        """Where the VGG-19 weights came from (for checkpoint metadata); None without VGG."""
        return None if self.vgg is None else self.vgg.weights_source

    def forward(self, pred, comp, target, mask, discriminator: PatchDiscriminator | None = None):
        _check_images(pred=pred, comp=comp, target=target, mask=mask)
        cfg = self.config
        terms = {}
        terms["hole"], terms["valid"] = pixel_l1(pred, target, mask)
        if cfg.ssim > 0:
            terms["ssim"] = ssim_loss(comp, target)
        if cfg.adversarial > 0:
            if discriminator is None:
                raise ValueError(
                    "discriminator: got None, but config.adversarial > 0 (use LossConfig.pixel_only() or pass D)"
                )
            terms["adversarial"] = generator_adversarial_loss(
                discriminator, comp, mask, cfg.gan_loss
            )
        if cfg.feature_matching > 0:  # LossConfig allows it only with adversarial > 0: D is here
            terms["feature_matching"] = feature_matching_loss(discriminator, target, comp, mask)
        if self.vgg is not None:
            feats_pred = self.vgg(pred)
            with torch.no_grad():
                feats_target = self.vgg(target)
            if cfg.perceptual > 0:
                terms["perceptual"] = perceptual_loss(feats_pred, feats_target)
            if cfg.style > 0:
                terms["style"] = style_loss(feats_pred, feats_target)
        weights = cfg.term_weights()
        total = sum(weights[name] * value for name, value in terms.items())
        logs = {name: value.detach() for name, value in terms.items()}
        logs["total"] = total.detach()
        return total, logs


def _check_images(**tensors: torch.Tensor) -> None:
    """Images (B, 3, H, W) and a mask (B, 1, H, W) of the same B, H, W."""
    reference = None
    for name, t in tensors.items():
        channels = 1 if name == "mask" else 3
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: got {type(t).__name__}, expected a torch.Tensor")
        if t.dim() != 4 or t.shape[1] != channels:
            raise ValueError(f"{name}: got shape {tuple(t.shape)}, expected (B, {channels}, H, W)")
        size = (t.shape[0], *t.shape[2:])
        if reference is not None and size != reference[1]:
            raise ValueError(
                f"{name}: got shape {tuple(t.shape)}, but {reference[0]} has B, H, W = {reference[1]}"
            )
        reference = reference or (name, size)
