"""Bidirectional Feature Interaction (BFI) and Selective Feature Fusion (SFF) between the streams.

Taught in ``notebooks/04_bfi_sff.ipynb``. At every encoder scale and at the bottleneck BIDS-Net
hands features from the CNN stream to the Transformer stream and back. The Transformer stream
runs at 1/``scale`` of the CNN's resolution and usually at another width, so features are first
*aligned* (``Align``: resolution and channels) and then *fused* with the receiving stream's own
features (``SFF``, or the ablation baselines ``"add"`` and ``"concat"``).
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from bidsnet_lib.cnn import group_norm
from bidsnet_lib.plumbing import check_choice, check_int, check_positive_int, got_expected


class Align(nn.Module):
    """Resample by ``scale`` (output size / input size) and map the channels with a 1x1 conv + norm.

    Resampling is fixed (average pooling down, bilinear up) and the learned part is the 1x1
    convolution, as in Conformer's feature coupling unit (Peng et al., 2021): alignment adds few
    parameters, average pooling low-passes before it decimates (a 2x2 box: less aliasing than
    plain decimation, not none), and bilinear upsampling paints no checkerboard. The convolution
    and the GroupNorm run at the lower of the two resolutions, where they are cheapest: a 1x1
    convolution commutes with average pooling and with bilinear interpolation (both average
    pixels with weights summing to 1); the GroupNorm does not (its statistics depend on the
    resolution), so running it at the lower one is a choice. The norm puts the two streams' features on one
    scale before they are fused.
    """

    def __init__(self, in_channels: int, out_channels: int, scale: float = 1.0):
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        valid = isinstance(scale, int | float) and not isinstance(scale, bool) and scale > 0
        factor = (scale if scale >= 1 else 1 / scale) if valid else 0.0
        if factor < 1 or not math.isclose(factor, round(factor)):
            raise ValueError(
                got_expected("scale", scale, "a positive integer or the inverse of one (e.g. 2 or 0.5)")
            )
        self.scale = float(scale)
        self.factor = round(factor)
        self.proj = nn.Conv2d(in_channels, out_channels, 1)
        self.norm = group_norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale < 1:
            x = F.avg_pool2d(x, self.factor)  # (B, C_in, H/f, W/f)
        x = self.norm(self.proj(x))  # (B, C_out, h, w)
        if self.scale > 1:
            x = F.interpolate(x, scale_factor=self.factor, mode="bilinear", align_corners=False)
        return x  # (B, C_out, H*scale, W*scale)


class SFF(nn.Module):
    """Selective Feature Fusion: per-channel softmax weights across inputs, as in Selective Kernels.

    With inputs x_1..x_n of shape (B, C, H, W) (Li et al., 2019, "Selective kernel networks"):

        s = GAP(x_1 + ... + x_n)                     (B, C)      what the inputs hold together
        z = ReLU(LN(W_r s)),  W_r: C -> d            (B, d)      d = max(C // reduction, min_width)
        a_i = softmax_i(W_i z)                       (B, n, C)   the inputs compete per channel
        y = a_1 * x_1 + ... + a_n * x_n              (B, C, H, W)

    The softmax makes the fusion a convex choice per channel: the receiving stream learns, channel
    by channel, how much to take from the other stream. LayerNorm replaces SKNet's BatchNorm so
    the fusion, like the rest of the model, does not depend on the batch. The floor ``min_width``
    keeps the bottleneck from collapsing to a couple of units at small widths. The weights of the
    latest call are kept in ``last_weights`` (B, n, C) for visualisation.
    """

    def __init__(self, channels: int, num_inputs: int = 2, reduction: int = 4, min_width: int = 8):
        super().__init__()
        check_positive_int("channels", channels)
        check_positive_int("reduction", reduction)
        check_positive_int("min_width", min_width)
        check_int("num_inputs", num_inputs, 2)
        self.channels, self.num_inputs = channels, num_inputs
        hidden = max(channels // reduction, min_width)
        self.squeeze = nn.Sequential(nn.Linear(channels, hidden), nn.LayerNorm(hidden), nn.ReLU())
        self.select = nn.Linear(hidden, num_inputs * channels)
        self.last_weights: torch.Tensor | None = None

    def forward(self, *inputs: torch.Tensor, return_weights: bool = False):
        if len(inputs) != self.num_inputs:
            raise ValueError(f"SFF inputs: got {len(inputs)} tensors, expected {self.num_inputs}")
        shape = inputs[0].shape
        if len(shape) != 4 or shape[1] != self.channels:
            raise ValueError(f"SFF inputs: got {tuple(shape)}, expected (B, {self.channels}, H, W)")
        if any(x.shape != shape for x in inputs):
            raise ValueError(f"SFF inputs: got {[tuple(x.shape) for x in inputs]}, expected one shape for all")
        stacked = torch.stack(inputs, dim=1)  # (B, n, C, H, W)
        s = stacked.sum(dim=1).mean(dim=(-2, -1))  # (B, C)
        logits = self.select(self.squeeze(s))  # (B, n*C)
        weights = logits.view(-1, self.num_inputs, self.channels).softmax(dim=1)  # (B, n, C)
        fused = (weights[..., None, None].to(stacked.dtype) * stacked).sum(dim=1)  # (B, C, H, W)
        self.last_weights = weights.detach()
        return (fused, weights) if return_weights else fused


class AddFusion(nn.Module):
    """The ablation baseline: element-wise sum, no parameters."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.stack(inputs, dim=0).sum(dim=0)


class ConcatFusion(nn.Module):
    """The ablation baseline: concatenate the inputs and map back to ``channels`` with a 1x1 conv."""

    def __init__(self, channels: int, num_inputs: int = 2):
        super().__init__()
        check_positive_int("channels", channels)
        check_positive_int("num_inputs", num_inputs)
        self.proj = nn.Conv2d(num_inputs * channels, channels, 1)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.cat(inputs, dim=1))  # (B, n*C, H, W) -> (B, C, H, W)


FUSIONS = {
    "sff": lambda channels, reduction: SFF(channels, 2, reduction),
    "add": lambda channels, reduction: AddFusion(),
    "concat": lambda channels, reduction: ConcatFusion(channels, 2),
}

INTERACTIONS = {
    # name: (CNN -> Transformer enabled, Transformer -> CNN enabled)
    "bidirectional": (True, True),
    "cnn_to_trans": (True, False),
    "trans_to_cnn": (False, True),
    "none": (False, False),
}


def make_fusion(kind: str, channels: int, reduction: int = 4) -> nn.Module:
    """A module fusing two (B, channels, H, W) tensors: ``"sff"``, ``"add"`` or ``"concat"``."""
    check_choice("fusion", kind, sorted(FUSIONS))
    check_positive_int("channels", channels)
    return FUSIONS[kind](channels, reduction)


class BFI(nn.Module):
    """Bidirectional Feature Interaction: forward(c, t) -> (c', t') with

        t' = fuse_t(t, align_c2t(c))     CNN -> Transformer (local detail into the global stream)
        c' = fuse_c(c, align_t2c(t))     Transformer -> CNN (global context into the local stream)

    Both directions read the inputs as given, so neither waits for the other. ``c`` is
    (B, cnn_channels, H, W) and ``t`` (B, trans_channels, H/scale, W/scale). A direction that
    ``interaction`` leaves out passes its stream through and owns no parameters (DDP requires
    every parameter to receive a gradient).
    """

    def __init__(
        self,
        cnn_channels: int,
        trans_channels: int,
        scale: int = 2,
        fusion: str = "sff",
        interaction: str = "bidirectional",
        reduction: int = 4,
    ):
        super().__init__()
        check_positive_int("cnn_channels", cnn_channels)
        check_positive_int("trans_channels", trans_channels)
        check_positive_int("scale", scale)
        check_choice("fusion", fusion, sorted(FUSIONS))
        check_choice("interaction", interaction, sorted(INTERACTIONS))
        self.cnn_channels, self.trans_channels, self.scale = cnn_channels, trans_channels, scale
        self.interaction = interaction
        to_trans, to_cnn = INTERACTIONS[interaction]
        self.align_c2t = Align(cnn_channels, trans_channels, 1 / scale) if to_trans else None
        self.fuse_t = make_fusion(fusion, trans_channels, reduction) if to_trans else None
        self.align_t2c = Align(trans_channels, cnn_channels, scale) if to_cnn else None
        self.fuse_c = make_fusion(fusion, cnn_channels, reduction) if to_cnn else None

    def forward(self, c: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if c.dim() != 4 or c.shape[1] != self.cnn_channels:
            raise ValueError(f"c: got {tuple(c.shape)}, expected (B, {self.cnn_channels}, H, W)")
        expected = (c.shape[0], self.trans_channels, c.shape[2] // self.scale, c.shape[3] // self.scale)
        if c.shape[2] % self.scale or c.shape[3] % self.scale or tuple(t.shape) != expected:
            raise ValueError(
                f"t: got {tuple(t.shape)}, expected (B, {self.trans_channels}, H/{self.scale}, W/{self.scale}) "
                f"for c of shape {tuple(c.shape)}"
            )
        t_out = self.fuse_t(t, self.align_c2t(c)) if self.fuse_t is not None else t  # (B, Ct, h, w)
        c_out = self.fuse_c(c, self.align_t2c(t)) if self.fuse_c is not None else c  # (B, Cc, H, W)
        return c_out, t_out
