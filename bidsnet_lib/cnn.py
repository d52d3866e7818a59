"""The CNN stream: pre-activation residual blocks in a U-shaped encoder-decoder.

Taught in ``notebooks/02_cnn_stream.ipynb``. ``UStream`` is the U shared by both streams of
BIDS-Net: the CNN stream here fills it with convolutional blocks, the Transformer stream
(``bidsnet_lib.attention.TransformerStream``) with attention blocks. ``bidsnet_lib.model`` walks
the two U's stage by stage through their attributes so that the streams can exchange features
(BFI) at every scale.

Normalisation is GroupNorm throughout. Inpainting trains with batches of 1-8 crops, and
BatchNorm's batch statistics are then noisy and differ from the running statistics used at
evaluation; worse, the share of hole pixels varies from sample to sample, so batch statistics
mix very different inputs. GroupNorm normalises each sample on its own (over groups of channels
and all positions), so training and evaluation compute the same function at any batch size,
and pooling several channels keeps the statistics stable at the 8x8 bottleneck where
InstanceNorm would average over a handful of values.
"""

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from bidsnet_lib.plumbing import check_positive_int, got_expected


def num_groups(channels: int, min_per_group: int = 4, max_groups: int = 32) -> int:
    """The most GroupNorm groups (at most ``max_groups``) that keep ``min_per_group`` channels each."""
    check_positive_int("channels", channels)
    limit = max(1, min(max_groups, channels // min_per_group))
    # The largest divisor of `channels` not above `limit`: 1 always divides, so this ends.
    return next(g for g in range(limit, 0, -1) if channels % g == 0)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm whose group count suits ``channels`` (e.g. 8 groups for 32 channels, 1 for 3)."""
    return nn.GroupNorm(num_groups(channels), channels)


class PreActResBlock(nn.Module):
    """Pre-activation residual block: x + conv(act(norm(conv(act(norm(x)))))).

    Normalising and activating *before* each convolution (He et al., 2016, "Identity mappings in
    deep residual networks") leaves the shortcut a clean identity path, so gradients reach early
    layers unchanged however deep the U. SiLU with GroupNorm is the pairing of the diffusion
    U-Nets, the best-tested image-to-image CNNs of this size. When the width changes, a 1x1
    convolution projects the shortcut.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.act = nn.SiLU()
        self.shortcut = (
            nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))  # (B, C_out, H, W)
        h = self.conv2(self.act(self.norm2(h)))  # (B, C_out, H, W)
        return self.shortcut(x) + h


class Downsample(nn.Module):
    """Halve H and W and change the width with a 3x3 convolution of stride 2 (learned pooling)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # (B, C_out, H/2, W/2)


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour resize, then a 3x3 convolution that changes the width.

    A transposed convolution of stride 2 overlaps its kernels unevenly and paints checkerboards
    (Odena et al., 2016), which an inpainting model would show inside every hole.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")  # (B, C_in, 2H, 2W)
        return self.conv(x)  # (B, C_out, 2H, 2W)


class UStream(nn.Module):
    """A U-shaped encoder-decoder with skip connections, generic in its stem and its blocks.

    ``widths`` and ``depths`` hold one entry per encoder scale plus a last one for the bottleneck,
    so ``S = len(widths) - 1`` scales. Attributes (the contract ``bidsnet_lib.model`` relies on):

    - ``stem``: input -> (B, widths[0], H/r, W/r), where r is the stem's stride;
    - ``encoder[s]``: ``depths[s]`` blocks at ``widths[s]``; its output is the skip of scale s;
    - ``downsample[s]``: widths[s] -> widths[s+1], halves H and W;
    - ``bottleneck``: ``depths[S]`` blocks at ``widths[S]``;
    - ``upsample[s]``: widths[s+1] -> widths[s], doubles H and W;
    - ``merge[s]``: 1x1 convolution of concat(upsampled, skip), 2*widths[s] -> widths[s];
    - ``decoder[s]``: ``depths[s]`` blocks at ``widths[s]``.

    ``make_block(width)`` returns one block mapping (B, width, h, w) to the same shape.
    Subclasses may override ``make_downsample``/``make_upsample`` to resample differently.
    """

    def __init__(
        self,
        stem: nn.Module,
        widths: Sequence[int],
        depths: Sequence[int],
        make_block: Callable[[int], nn.Module],
    ):
        super().__init__()
        if not isinstance(stem, nn.Module):
            raise TypeError(f"stem: got {type(stem).__name__}, expected an nn.Module")
        if not callable(make_block):
            raise TypeError(f"make_block: got {type(make_block).__name__}, expected a callable")
        widths, depths = list(widths), list(depths)
        if len(widths) < 1 or len(widths) != len(depths):
            raise ValueError(
                f"widths, depths: got {len(widths)} widths and {len(depths)} depths, expected the same "
                "length >= 1 (encoder scales + bottleneck)"
            )
        for i, (w, d) in enumerate(zip(widths, depths, strict=True)):
            check_positive_int(f"widths[{i}]", w)
            check_positive_int(f"depths[{i}]", d)
        self.widths, self.depths = tuple(widths), tuple(depths)
        self.num_scales = len(widths) - 1
        scales = range(self.num_scales)

        def stage(width: int, depth: int) -> nn.Sequential:
            return nn.Sequential(*(make_block(width) for _ in range(depth)))

        self.stem = stem
        self.encoder = nn.ModuleList(stage(widths[s], depths[s]) for s in scales)
        self.downsample = nn.ModuleList(self.make_downsample(widths[s], widths[s + 1]) for s in scales)
        self.bottleneck = stage(widths[-1], depths[-1])
        self.upsample = nn.ModuleList(self.make_upsample(widths[s + 1], widths[s]) for s in scales)
        self.merge = nn.ModuleList(nn.Conv2d(2 * widths[s], widths[s], 1) for s in scales)
        self.decoder = nn.ModuleList(stage(widths[s], depths[s]) for s in scales)

    def make_downsample(self, in_channels: int, out_channels: int) -> nn.Module:
        """The module that halves the resolution between scale s (in) and s+1 (out)."""
        return Downsample(in_channels, out_channels)

    def make_upsample(self, in_channels: int, out_channels: int) -> nn.Module:
        """The module that doubles the resolution from scale s+1 (in) to s (out)."""
        return Upsample(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, w0, H/r, W/r)
        stride = 2**self.num_scales
        if x.shape[-2] % stride or x.shape[-1] % stride:
            raise ValueError(
                f"x: got features of {tuple(x.shape[-2:])} after the stem, expected both sides "
                f"multiples of 2**num_scales = {stride} (pad the input)"
            )
        skips = []
        for s in range(self.num_scales):
            x = self.encoder[s](x)  # (B, w_s, h_s, w_s)
            skips.append(x)
            x = self.downsample[s](x)  # (B, w_{s+1}, h_s/2, w_s/2)
        x = self.bottleneck(x)  # (B, w_S, h_S, w_S)
        for s in reversed(range(self.num_scales)):
            x = self.upsample[s](x)  # (B, w_s, h_s, w_s)
            x = self.merge[s](torch.cat([x, skips[s]], dim=1))  # (B, 2 w_s, ...) -> (B, w_s, ...)
            x = self.decoder[s](x)
        return x  # (B, widths[0], H/r, W/r)


class CNNStream(UStream):
    """The CNN stream of BIDS-Net: a full-resolution 3x3 stem and pre-activation residual blocks."""

    def __init__(self, in_channels: int, widths: Sequence[int], depths: Sequence[int]):
        check_positive_int("in_channels", in_channels)
        if len(widths) < 1:
            raise ValueError(got_expected("widths", list(widths), "at least one width"))
        check_positive_int("widths[0]", widths[0])
        stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        super().__init__(stem, widths, depths, lambda width: PreActResBlock(width, width))
