"""BIDS-Net: the CNN and Transformer U-streams, joined by BFI at every scale, and its config.

Assembled in ``notebooks/04_bfi_sff.ipynb`` from the CNN stream (``bidsnet_lib.cnn``, notebook
02), the Transformer stream (``bidsnet_lib.attention``, notebook 03) and the fusion modules
(``bidsnet_lib.fusion``). ``bidsnet model --summary`` prints the parameter counts of
the presets and the ablation variants (``bidsnet_lib.ablate``). Two rivals of the design share
its input and head, at about its parameter count: :class:`SingleStream`, one stream alone
(``streams="cnn"`` or ``"transformer"``), and :class:`UnifiedNet`, the paper's unified-path rival
(``interaction="unified"``); :func:`build_model` builds whichever a config names.

Data flow for an (H, W) input, S scales and the Transformer at 1/d of the CNN's resolution:

    [image with holes filled, mask]       (B, 4, H, W)   holes zeroed, or pre-filled by Telea
    CNN stem / Transformer stem           (B, c_0, H, W)            (B, t_0, H/d, W/d)
    scale s: encoder stages, then BFI     (B, c_s, H/2^s, W/2^s)    (B, t_s, H/(d 2^s), W/(d 2^s))
             the fused pair is the skip of scale s, then both streams downsample
    bottleneck: both bottlenecks, BFI     (B, c_S, H/2^S, W/2^S)    (B, t_S, ...)
    decoders, each with its own skips     (B, c_0, H, W)            (B, t_0, H/d, W/d)
    Transformer output aligned to (H, W), concatenated, refined, projected -> (B, 3, H, W):
    a sigmoid (``output="image"``), or the fill plus a zero-initialised correction ("residual")
"""

import dataclasses
import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bidsnet_lib.attention import ATTENTIONS, FastAttention, TransformerBlock, TransformerStream
from bidsnet_lib.cnn import CNNStream, PreActResBlock, UStream, group_norm
from bidsnet_lib.fusion import BFI, FUSIONS, INTERACTIONS, Align
from bidsnet_lib.plumbing import check_choice, check_finite_float, check_positive_int

_TUPLE_FIELDS = ("channel_mults", "cnn_depths", "trans_depths")
# What the network sees in the holes: zeros (the paper), or OpenCV's Telea fill, which gives the
# network for free the smooth continuation it would otherwise have to learn first.
INPUT_FILLS = ("zeros", "telea")
# What the head predicts: the image itself (through a sigmoid), or a correction added to the fill.
OUTPUTS = ("image", "residual")
FILL_RADIUS = 3  # Telea's neighbourhood for input_fill="telea" (r=5 is 2-3x slower, +0.1 dB)
STREAMS = ("cnn", "transformer")  # the kinds of SingleStream
STREAM_CHOICES = ("dual", *STREAMS)  # BIDSNetConfig.streams: both joined by BFI, or one alone
# The paper's rival to bidirectional interaction: one path whose every block holds both a
# convolution and an attention, so there are no two streams to interact (UnifiedNet).
UNIFIED = "unified"


def check_config_keys(cls, data) -> None:
    """Refuse a config dict that is not a dict or names a field the dataclass ``cls`` lacks."""
    if not isinstance(data, dict):
        raise TypeError(f"data: got {type(data).__name__}, expected a dict")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__} keys: got unknown {unknown}, expected some of {sorted(known)}")


@dataclass(frozen=True)
class BIDSNetConfig:
    """Everything that shapes a BIDS-Net; the defaults are the ``paper()`` preset.

    Stream widths at scale s: ``width * channel_mults[s]`` channels in total, a ``cnn_share`` of
    them in the CNN stream and the rest in the Transformer stream (the paper finds an equal
    split best). ``channel_mults`` has one entry per encoder scale plus the bottleneck's, so
    ``num_scales = len(cnn_depths) = len(channel_mults) - 1``. Inputs are padded to a multiple of
    ``stride = 2**num_scales * trans_downsample``. The Transformer stream runs at
    1/``trans_downsample`` of the CNN's resolution; its FastAttention draws ``nb_features``
    (orthogonal if ``ortho``) random features and redraws them every ``redraw_interval`` training
    calls (``None``: never); ``attention`` is "favor" (the paper's FAVOR+), "favor++" (optimal
    positive random features, the course's addition) or "softmax" (exact). ``attention``,
    ``fusion``, ``interaction`` and ``cnn_share`` are the paper's ablations;
    ``dataclasses.replace(config, fusion="add")`` builds one. ``interaction="unified"`` is the
    paper's unified-path rival (:class:`UnifiedNet`), and ``streams`` ("dual" | "cnn" |
    "transformer") keeps both streams or one alone (:class:`SingleStream`); both rivals are sized
    to this config's BIDS-Net parameter count (:func:`build_model`). ``input_fill`` ("zeros" |
    "telea") is what the holes hold on input, ``output`` ("image" | "residual") whether the head
    predicts the image or a correction to that fill (the course's additions, not the paper's).
    """

    width: int = 64
    cnn_share: float = 0.5
    channel_mults: tuple[int, ...] = (1, 2, 4, 8)
    cnn_depths: tuple[int, ...] = (2, 2, 2)
    trans_depths: tuple[int, ...] = (1, 2, 2)
    cnn_bottleneck_depth: int = 2
    trans_bottleneck_depth: int = 2
    heads: int = 4
    dim_head: int = 32
    trans_downsample: int = 2
    attention: str = "favor"
    nb_features: int = 72
    ortho: bool = True
    redraw_interval: int | None = 1000
    fusion: str = "sff"
    interaction: str = "bidirectional"
    sff_reduction: int = 4
    # ``help`` makes a field a flag of `bidsnet train` (with ``choices``).
    input_fill: str = field(default="zeros", metadata={
        "choices": INPUT_FILLS, "help": "holes on input: zeros, or a Telea fill"})
    output: str = field(default="image", metadata={
        "choices": OUTPUTS, "help": "the head predicts the image, or a residual on the fill"})
    streams: str = "dual"

    def __post_init__(self):
        for name in _TUPLE_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, list | tuple) or not value:
                raise ValueError(f"{name}: got {value!r}, expected a non-empty tuple of ints")
            for i, v in enumerate(value):
                check_positive_int(f"{name}[{i}]", v)
            object.__setattr__(self, name, tuple(value))  # lists from JSON become tuples
        for name in ("width", "cnn_bottleneck_depth", "trans_bottleneck_depth", "heads",
                     "dim_head", "trans_downsample", "nb_features", "sff_reduction"):
            check_positive_int(name, getattr(self, name))
        if self.redraw_interval is not None:
            check_positive_int("redraw_interval", self.redraw_interval)
        if not isinstance(self.ortho, bool):
            raise ValueError(f"ortho: got {self.ortho!r}, expected a bool")
        check_finite_float("cnn_share", self.cnn_share, 0, 1, low_open=True, high_open=True)
        if len(self.trans_depths) != len(self.cnn_depths):
            raise ValueError(
                f"cnn_depths, trans_depths: got {len(self.cnn_depths)} and {len(self.trans_depths)} "
                "entries, expected one per scale each"
            )
        if len(self.channel_mults) != len(self.cnn_depths) + 1:
            raise ValueError(
                f"channel_mults: got {len(self.channel_mults)} entries {self.channel_mults}, expected "
                f"num_scales + 1 = {len(self.cnn_depths) + 1} (scales + bottleneck)"
            )
        for name, value, choices in (("attention", self.attention, ATTENTIONS),
                                     ("fusion", self.fusion, FUSIONS),
                                     ("interaction", self.interaction, (*INTERACTIONS, UNIFIED)),
                                     ("streams", self.streams, STREAM_CHOICES),
                                     ("input_fill", self.input_fill, INPUT_FILLS),
                                     ("output", self.output, OUTPUTS)):
            check_choice(name, value, sorted(choices))
        if self.streams != "dual" and self.interaction == UNIFIED:
            raise ValueError(f"interaction: got {UNIFIED!r} with streams={self.streams!r}, expected streams='dual' "
                             "(the unified path replaces both streams; a single stream has nothing to unify)")
        for s, (c, t) in enumerate(zip(self.cnn_widths, self.trans_widths, strict=True)):
            if c < 1 or t < 1:
                raise ValueError(
                    f"cnn_share: got {self.cnn_share}, leaving a stream empty at scale {s} ({c} CNN + {t} "
                    "Transformer channels), expected a share nearer 0.5 or a larger width"
                )

    @property
    def num_scales(self) -> int:
        return len(self.cnn_depths)

    @property
    def cnn_widths(self) -> tuple[int, ...]:
        return tuple(round(self.width * m * self.cnn_share) for m in self.channel_mults)

    @property
    def trans_widths(self) -> tuple[int, ...]:
        return tuple(self.width * m - c for m, c in zip(self.channel_mults, self.cnn_widths, strict=True))

    @property
    def form(self) -> str:
        """How the network starts, in words for result tables: e.g. "Telea fill + residual head"."""
        fill = {"zeros": "zero fill", "telea": "Telea fill"}[self.input_fill]
        return f"{fill} + {self.output} head"

    @property
    def stride(self) -> int:
        """Inputs are padded to a multiple of this; it is also the smallest accepted side."""
        return 2**self.num_scales * self.trans_downsample

    @classmethod
    def paper(cls) -> "BIDSNetConfig":
        """For training at 256x256 on a 16 GB Colab T4 with mixed precision, batch 8.

        Streams of 32/64/128/256 channels (8.4 M parameters). One 256x256 sample keeps about
        0.9 GB of activations for the backward pass under autocast (1.3 GB in fp32), measured
        with saved-tensor hooks: batch 8 needs about 7 GB, which leaves room on a T4 for the
        discriminator and the VGG of the perceptual loss. The Transformer's first scale has one
        block only: it attends over 128x128 tokens, the costliest place in the network.
        """
        return cls()

    @classmethod
    def small(cls) -> "BIDSNetConfig":
        """For CPU: tests, notebooks and a demo checkpoint trained on 2 cores in about an hour.

        Streams of 16/32/64/64 channels, one block each (0.75 M parameters); a training step
        (forward and backward) at 128x128, batch 4, takes about 0.3 s on 2 idle CPU cores.
        """
        return cls(width=32, channel_mults=(1, 2, 4, 4), cnn_depths=(1, 1, 1), trans_depths=(1, 1, 1),
                   cnn_bottleneck_depth=1, trans_bottleneck_depth=1, heads=2, dim_head=16)

    def to_dict(self) -> dict:
        """Plain data (ints, floats, strings, lists) for checkpoints and JSON."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "BIDSNetConfig":
        """The config ``to_dict`` wrote; missing keys take the defaults, unknown keys are an error."""
        check_config_keys(cls, data)
        return cls(**data)


def check_inputs(image: torch.Tensor, mask: torch.Tensor, min_size: int = 1) -> None:
    """Raise ValueError/TypeError unless image is (B, 3, H, W) in [0, 1] and mask (B, 1, H, W) in {0, 1}."""
    for name, x in (("image", image), ("mask", mask)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: got {type(x).__name__}, expected a torch.Tensor")
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"image: got shape {tuple(image.shape)}, expected (B, 3, H, W)")
    if not image.is_floating_point():
        raise ValueError(f"image: got dtype {image.dtype}, expected a float tensor in [0, 1]")
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask: got shape {tuple(mask.shape)}, expected (B, 1, H, W)")
    if mask.shape[0] != image.shape[0] or mask.shape[-2:] != image.shape[-2:]:
        raise ValueError(
            f"mask: got shape {tuple(mask.shape)} for image shape {tuple(image.shape)}, "
            f"expected ({image.shape[0]}, 1, {image.shape[2]}, {image.shape[3]})"
        )
    if image.shape[0] == 0:
        raise ValueError(f"image: got an empty batch, shape {tuple(image.shape)}, expected B >= 1")
    height, width = image.shape[-2:]
    if height < min_size or width < min_size:
        raise ValueError(f"image: got {height}x{width}, expected both sides at least {min_size} pixels")
    # One reduction and one device sync for the three value checks: min and max propagate NaN.
    low, high = torch.stack(torch.aminmax(image)).tolist()
    if math.isnan(low) or math.isnan(high):
        raise ValueError("image: got NaN, expected values in [0, 1]")
    if low < 0 or high > 1:
        raise ValueError(f"image: got values in [{low:.4g}, {high:.4g}], expected values in [0, 1]")
    if mask.dtype != torch.bool and not ((mask == 0) | (mask == 1)).all():
        raise ValueError("mask: got values other than 0 and 1, expected 0 = known, 1 = hole")


def fill_each(fill, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``fill(rgb, hole)`` on each 8-bit image of a batch: (B, 3, H, W) in [0, 1] and (B, 1, H, W)
    1 = hole -> (B, 3, H, W); ``fill`` maps (H, W, 3) uint8 and (H, W) uint8 0/1 to (H, W, 3) uint8.

    Classical inpainters work on 8-bit images, so every pixel comes back rounded to 1/255; callers
    keep their own known pixels (``composite``). No gradient flows through it.
    """
    pixels = (image.detach().float() * 255).round().to(torch.uint8).permute(0, 2, 3, 1)  # (B, H, W, 3)
    pixels = pixels.contiguous().cpu().numpy()
    holes = mask.detach().to(torch.uint8)[:, 0].contiguous().cpu().numpy()  # (B, H, W)
    filled = np.stack([fill(p, m) for p, m in zip(pixels, holes, strict=True)])  # (B, H, W, 3)
    return torch.from_numpy(filled).permute(0, 3, 1, 2).to(image.device, image.dtype) / 255


def opencv_fill(image: torch.Tensor, mask: torch.Tensor, method: int = cv2.INPAINT_TELEA,
                radius: int = FILL_RADIUS) -> torch.Tensor:
    """``cv2.inpaint`` (Telea by default) over a batch, through :func:`fill_each`."""
    return fill_each(lambda rgb, hole: cv2.inpaint(rgb, hole, radius, method), image, mask)


def composite(pred: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The prediction inside the hole (mask = 1) and the image, bit for bit, everywhere else."""
    if pred.shape != image.shape:
        raise ValueError(f"pred: got shape {tuple(pred.shape)}, expected the image shape {tuple(image.shape)}")
    check_inputs(image, mask)
    # A select, not pred * mask + image * (1 - mask): a NaN or inf in pred would leak into known pixels.
    return torch.where(mask.bool(), pred.to(image.dtype), image)


class InpaintingNet(nn.Module):
    """What BIDS-Net and its single-stream ablations share: ``model(image, mask) -> prediction``.

    In: the holes zeroed or pre-filled (``config.input_fill``), the mask beside them, reflect-padded
    to a multiple of ``config.stride``. Out: a refinement block and a 3x3 head on the features,
    cropped back to (H, W), then a sigmoid or the fill plus the head's correction
    (``config.output``). A subclass sets ``config``, calls :meth:`_build_output` with the width of
    its features and defines :meth:`features`: (B, 4, H', W') -> (B, C, H', W').
    """

    config: BIDSNetConfig

    def _build_output(self, channels: int) -> None:
        self.refine = PreActResBlock(channels, channels)
        self.head = nn.Sequential(group_norm(channels), nn.SiLU(), nn.Conv2d(channels, 3, 3, padding=1))
        if self.config.output == "residual":  # starts as the fill itself; training learns the correction
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def redraw_features(self) -> None:
        """Draw new random features in every FastAttention (no-op with exact attention)."""
        for module in self.modules():
            if isinstance(module, FastAttention):
                module.redraw_features()

    def forward(self, image: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
        """``fill`` (B, 3, H, W), optional: what the holes hold on input instead of
        ``config.input_fill``'s (a coarser level's fill, upsampled, in coarse-to-fine inference);
        a residual head then corrects that fill. Known pixels always come from ``image``."""
        stride = self.config.stride
        check_inputs(image, mask, min_size=stride)
        height, width = image.shape[-2:]
        mask = mask.to(image.dtype)
        known = image * (1 - mask)
        if fill is not None:
            if not isinstance(fill, torch.Tensor) or fill.shape != image.shape:
                got = tuple(fill.shape) if isinstance(fill, torch.Tensor) else type(fill).__name__
                raise ValueError(f"fill: got {got}, expected the image's shape {tuple(image.shape)}")
            fill = known + fill.to(image.dtype) * mask
        elif self.config.input_fill == "zeros":
            fill = known
        else:
            fill = known + opencv_fill(image, mask) * mask
        x = torch.cat([fill, mask], dim=1)  # (B, 4, H, W), holes zeroed or pre-filled
        # Reflection continues the image across the border, so the padding looks like content.
        x = F.pad(x, (0, -width % stride, 0, -height % stride), mode="reflect")  # (B, 4, H', W')
        out = self.head(self.refine(self.features(x)))[..., :height, :width]  # (B, 3, H, W)
        if self.config.output == "residual":
            return (fill + out).clamp(0, 1)
        return torch.sigmoid(out)


class BIDSNet(InpaintingNet):
    """The Bidirectional Interaction Dual-Stream Network: ``model(image, mask) -> prediction``."""

    def __init__(self, config: BIDSNetConfig):
        super().__init__()
        if not isinstance(config, BIDSNetConfig):
            raise TypeError(f"config: got {type(config).__name__}, expected a BIDSNetConfig")
        if config.streams != "dual" or config.interaction == UNIFIED:
            raise ValueError(f"config: got streams={config.streams!r}, interaction={config.interaction!r}, "
                             "expected BIDS-Net's two streams; build_model(config) builds the rivals")
        self.config = config
        cw, tw, d = config.cnn_widths, config.trans_widths, config.trans_downsample
        # Both stems see the masked image and the mask: 3 + 1 channels.
        self.cnn = CNNStream(4, cw, (*config.cnn_depths, config.cnn_bottleneck_depth))
        self.trans = TransformerStream(
            4, tw, (*config.trans_depths, config.trans_bottleneck_depth), heads=config.heads,
            dim_head=config.dim_head, attention=config.attention, nb_features=config.nb_features,
            ortho=config.ortho, redraw_interval=config.redraw_interval, patch=d,
        )
        # One BFI per encoder scale, the last one at the bottleneck.
        self.bfi = nn.ModuleList(
            BFI(cw[s], tw[s], d, config.fusion, config.interaction, config.sff_reduction)
            for s in range(config.num_scales + 1)
        )
        self.trans_up = Align(tw[0], tw[0], d)
        self._build_output(cw[0] + tw[0])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Both streams, joined by BFI at every scale: (B, 4, H', W') -> (B, c_0 + t_0, H', W')."""
        cnn, trans = self.cnn, self.trans
        c, t = cnn.stem(x), trans.stem(x)  # (B, c_0, H', W'), (B, t_0, H'/d, W'/d)
        skips = []
        for s in range(self.config.num_scales):
            c, t = self.bfi[s](cnn.encoder[s](c), trans.encoder[s](t))
            skips.append((c, t))
            c, t = cnn.downsample[s](c), trans.downsample[s](t)  # half the resolution
        c, t = self.bfi[-1](cnn.bottleneck(c), trans.bottleneck(t))
        for s in reversed(range(self.config.num_scales)):
            skip_c, skip_t = skips[s]
            c = cnn.decoder[s](cnn.merge[s](torch.cat([cnn.upsample[s](c), skip_c], dim=1)))
            t = trans.decoder[s](trans.merge[s](torch.cat([trans.upsample[s](t), skip_t], dim=1)))
        return torch.cat([c, self.trans_up(t)], dim=1)


class SingleStream(InpaintingNet):
    """One U-stream of BIDS-Net alone, with BIDS-Net's input, refinement block and head: the
    paper's CNN-only or Transformer-only ablation. ``kind``: one of :data:`STREAMS`; ``widths``:
    channels per scale plus the bottleneck's; depths and attention come from ``config``'s stream
    (its fusion and ``cnn_share`` are unused). :func:`single_stream` picks widths for a size."""

    def __init__(self, kind: str, config: BIDSNetConfig, widths: tuple[int, ...]):
        super().__init__()
        check_choice("kind", kind, STREAMS)
        if not isinstance(config, BIDSNetConfig):
            raise TypeError(f"config: got {type(config).__name__}, expected a BIDSNetConfig")
        self.kind, self.config = kind, config
        if kind == "cnn":
            self.stream = CNNStream(4, widths, (*config.cnn_depths, config.cnn_bottleneck_depth))
            self.up = nn.Identity()
        else:
            self.stream = TransformerStream(
                4, widths, (*config.trans_depths, config.trans_bottleneck_depth), heads=config.heads,
                dim_head=config.dim_head, attention=config.attention, nb_features=config.nb_features,
                patch=config.trans_downsample, ortho=config.ortho, redraw_interval=config.redraw_interval)
            self.up = Align(widths[0], widths[0], config.trans_downsample)
        self._build_output(widths[0])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.stream(x))  # (B, w_0, H', W')


class UnifiedBlock(nn.Module):
    """One block of the unified path: a pre-activation residual convolution, then a Transformer
    block on the same features at 1/``patch`` of their resolution, whose change is upsampled and
    added back: (B, width, H, W) -> (B, width, H, W). Both operations on one set of channels."""

    def __init__(self, width: int, config: BIDSNetConfig):
        super().__init__()
        self.conv = PreActResBlock(width, width)
        self.attention = TransformerBlock(width, config.heads, config.dim_head, config.attention,
                                          config.nb_features, config.ortho, config.redraw_interval)
        self.patch = config.trans_downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        low = F.avg_pool2d(x, self.patch) if self.patch > 1 else x  # (B, width, H/p, W/p)
        change = self.attention(low) - low  # what attention adds, at the low resolution
        if self.patch > 1:
            change = F.interpolate(change, scale_factor=self.patch, mode="bilinear", align_corners=False)
        return x + change


class UnifiedNet(InpaintingNet):
    """The paper's unified-path rival to bidirectional interaction, as the course builds it: one
    U-stream whose every block is a :class:`UnifiedBlock` (a convolution and an attention on the
    same channels), with BIDS-Net's input, refinement block and head. Depths are the CNN
    stream's; ``widths`` channels per scale plus the bottleneck's (:func:`build_model` picks them
    for BIDS-Net's parameter count). The paper does not describe its rival; this reading keeps
    what it names, one path holding both operations, and changes nothing else."""

    def __init__(self, config: BIDSNetConfig, widths: tuple[int, ...]):
        super().__init__()
        if not isinstance(config, BIDSNetConfig):
            raise TypeError(f"config: got {type(config).__name__}, expected a BIDSNetConfig")
        self.config = config
        self.stream = UStream(nn.Conv2d(4, widths[0], 3, padding=1), widths,
                              (*config.cnn_depths, config.cnn_bottleneck_depth),
                              lambda width: UnifiedBlock(width, config))
        self._build_output(widths[0])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stream(x)  # (B, w_0, H', W')


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _nearest_size(build, start: int, target: int) -> nn.Module:
    """``build(base)`` for the base whose parameter count is nearest ``target``."""
    check_positive_int("target", target)  # a parameter count
    # Parameters grow about with the square of the width: start from that guess, then step until
    # size(base) <= target < size(base + 1) (or base = 1), and keep the nearer of the two.
    base = max(1, round(start * math.sqrt(target / parameter_count(build(start)))))
    while base > 1 and parameter_count(build(base)) > target:
        base -= 1
    while parameter_count(build(base + 1)) <= target:
        base += 1
    return min((build(base), build(base + 1)), key=lambda m: abs(parameter_count(m) - target))


def single_stream(kind: str, config: BIDSNetConfig, target: int) -> SingleStream:
    """The ``kind`` stream alone, widths ``base * config.channel_mults`` with the base whose
    parameter count is nearest ``target`` (e.g. a BIDS-Net's, for an ablation at equal size)."""
    return _nearest_size(lambda base: SingleStream(kind, config, tuple(base * m for m in config.channel_mults)),
                         config.width, target)


def build_model(config: BIDSNetConfig) -> InpaintingNet:
    """The network ``config`` names: :class:`BIDSNet`, or a rival at BIDS-Net's parameter count
    (``streams="cnn"``/``"transformer"``: :class:`SingleStream`; ``interaction="unified"``:
    :class:`UnifiedNet`). Every file that builds a model from a config (training, checkpoints,
    inference) comes through here, so a rival's checkpoint rebuilds the same network."""
    if not isinstance(config, BIDSNetConfig):
        raise TypeError(f"config: got {type(config).__name__}, expected a BIDSNetConfig")
    if config.streams == "dual" and config.interaction != UNIFIED:
        return BIDSNet(config)
    # The reference size: this config's BIDS-Net with bidirectional interaction.
    target = parameter_count(BIDSNet(dataclasses.replace(config, streams="dual", interaction="bidirectional")))
    if config.streams != "dual":
        return single_stream(config.streams, config, target)
    return _nearest_size(lambda base: UnifiedNet(config, tuple(base * m for m in config.channel_mults)),
                         config.width, target)


def count_parameters(model: InpaintingNet) -> dict[str, int]:
    """Trainable parameters in total and, for a BIDS-Net, per part: CNN stream, Transformer
    stream, fusion, head (a rival has only its total)."""
    counts = {"total": parameter_count(model)}
    if isinstance(model, BIDSNet):
        parts = {"cnn": model.cnn, "transformer": model.trans, "fusion": model.bfi,
                 "head": nn.ModuleList([model.trans_up, model.refine, model.head])}
        counts.update({name: parameter_count(part) for name, part in parts.items()})
    return counts


def summary_table(configs: dict[str, BIDSNetConfig]) -> str:
    """A text table of ``count_parameters`` for each named config ("-": no such part)."""
    columns = ("total", "cnn", "transformer", "fusion", "head")
    name_width = max(len("config"), *(len(n) for n in configs))
    lines = [f"{'config':<{name_width}}" + "".join(f"{c:>13}" for c in columns)]
    for name, config in configs.items():
        counts = count_parameters(build_model(config))
        lines.append(f"{name:<{name_width}}"
                     + "".join(f"{counts[c]:>13,}" if c in counts else f"{'-':>13}" for c in columns))
    return "\n".join(lines)
