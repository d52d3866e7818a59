"""The frozen VGG-19 feature extractor of the perceptual and style losses.

Taught in ``notebooks/05_losses.ipynb`` (section 2); :mod:`bidsnet_lib.losses` computes the
losses on its named ReLU maps. Pretrained VGG-19 weights are loaded only when asked
(:func:`load_vgg19_features`): torch.hub's cache, a download, or a state-dict file; offline they
fail at once, naming the file to place and where. A random backbone needs ``weights="random"``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from bidsnet_lib import plumbing

# torchvision's VGG-19 ("E"): conv widths per block. Indices of ``vgg19().features`` follow from it.
_VGG19_BLOCKS = (
    (64, 64),
    (128, 128),
    (256, 256, 256, 256),
    (512, 512, 512, 512),
    (512, 512, 512, 512),
)


def _vgg19_layer_names() -> list[str]:
    """Names of ``torchvision.models.vgg19().features`` children in order: conv1_1, relu1_1, …"""
    names = []
    for block, widths in enumerate(_VGG19_BLOCKS, start=1):
        for i in range(1, len(widths) + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


VGG19_LAYERS = _vgg19_layer_names()
# EdgeConnect's choice, which its weights (perceptual 0.1, style 250) were tuned with.
PERCEPTUAL_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STYLE_LAYERS = ("relu2_2", "relu3_4", "relu4_4", "relu5_2")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"  # VGG19_Weights.IMAGENET1K_V1
VGG19_FILE = VGG19_URL.rsplit("/", 1)[-1]


class VGG19Features(nn.Module):
    """Frozen VGG-19 trunk up to the deepest requested layer; maps [0, 1] RGB to named ReLU maps.

    ``weights_source`` says where the weights came from ("imagenet", "file:<path>" or "random");
    the trainer stores it in checkpoint metadata so a random backbone is never mistaken later.
    """

    def __init__(self, layers=PERCEPTUAL_LAYERS + STYLE_LAYERS, weights_source: str = "random"):
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_LAYERS]
        if not layers or unknown:
            raise ValueError(f"layers: got {list(layers)!r}, expected names from {VGG19_LAYERS}")
        self.layers = tuple(dict.fromkeys(layers))  # ordered, no repeats
        depth = max(VGG19_LAYERS.index(name) for name in self.layers) + 1
        modules, in_ch = [], 3
        for name in VGG19_LAYERS[:depth]:
            if name.startswith("conv"):
                out_ch = _VGG19_BLOCKS[int(name[4]) - 1][int(name[6:]) - 1]
                modules.append(nn.Conv2d(in_ch, out_ch, 3, padding=1))
                in_ch = out_ch
            elif name.startswith("relu"):
                modules.append(nn.ReLU())
            else:
                modules.append(nn.MaxPool2d(2, 2))
        self.body = nn.Sequential(*modules)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.weights_source = weights_source
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, H, W) in [0, 1] -> {layer name: (B, C_l, H_l, W_l)}."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image: got shape {tuple(image.shape)}, expected (B, 3, H, W)")
        x = (image - self.mean) / self.std  # ImageNet statistics, as VGG-19 was trained
        wanted, out = set(self.layers), {}
        for name, module in zip(VGG19_LAYERS, self.body, strict=False):
            x = module(x)
            if name in wanted:
                out[name] = x
        return out


def _features_state_dict(
    state: object, source: str, model: VGG19Features
) -> dict[str, torch.Tensor]:
    """Keys of ``model.body`` from a full torchvision vgg19 state dict or its ``features`` part."""
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise ValueError(
            f"{source}: expected a VGG-19 state dict (str -> tensor), got {type(state).__name__}"
        )
    wanted = model.body.state_dict()
    found, unexpected = {}, []
    for key, value in state.items():
        if key.startswith("classifier."):
            continue  # the ImageNet classifier head; the losses use conv features only
        name = key.removeprefix("features.")
        index = name.split(".", 1)[0]
        if not index.isdigit() or not isinstance(value, torch.Tensor):
            unexpected.append(key)
        elif name in wanted:
            found[name] = value
        elif int(index) < len(model.body):
            unexpected.append(key)  # e.g. batch-norm keys of vgg19_bn
        # deeper layers than the losses need are ignored
    missing = [k for k in wanted if k not in found]
    if unexpected or missing:
        raise ValueError(
            f"{source}: not a torchvision vgg19 (no batch norm) state dict; "
            f"unexpected keys {unexpected[:5]}, missing keys {missing[:5]} "
            f"(expected 'features.N.weight'/'features.N.bias', optionally 'classifier.*')"
        )
    for name, value in found.items():
        if value.shape != wanted[name].shape:
            raise ValueError(
                f"{source}: key features.{name} has shape {tuple(value.shape)}, "
                f"expected {tuple(wanted[name].shape)} (torchvision vgg19)"
            )
    return found


def load_vgg19_features(
    weights: str | os.PathLike = "imagenet", layers=PERCEPTUAL_LAYERS + STYLE_LAYERS
) -> VGG19Features:
    """A frozen VGG-19 feature extractor.

    ``weights``: "imagenet" (torchvision's IMAGENET1K_V1: torch.hub's cached file, or a download
    when download.pytorch.org is reachable), a path to a torchvision vgg19 state dict (full or
    only its ``features.*`` keys), or "random" (explicit only; warns and records
    ``weights_source="random"``). Missing weights raise at once; nothing falls back silently.
    """
    if not isinstance(weights, str | os.PathLike):
        raise TypeError(
            f"weights: got {type(weights).__name__}, expected 'imagenet', 'random' or a file path"
        )
    # Built in a forked RNG with a fixed seed: a random backbone is the same every run, and
    # building one never moves the caller's RNG (a trainer's resume stays exact).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = VGG19Features(layers)
        if weights == "random":
            for module in model.body:
                if isinstance(module, nn.Conv2d):  # torchvision's VGG initialisation
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(module.bias)
    if weights == "random":
        warnings.warn(
            "VGG-19 with RANDOM weights (vgg_weights='random'): the perceptual and style losses do "
            "not measure ImageNet features; fine for tests and CPU demos, not for real training.",
            RandomWeightsWarning,
            stacklevel=2,
        )
        model.weights_source = "random"
        return model
    if weights == "imagenet":
        state, cached = plumbing.fetch_weights(
            VGG19_FILE, VGG19_URL, "VGG-19 (ImageNet weights, 548 MB, for the perceptual and style losses)",
            alternative=": vgg_weights='/path/to/vgg19.pth' (a torchvision vgg19 state dict), or, knowing the "
                        "losses then carry no ImageNet meaning, vgg_weights='random'")
        source, label = str(cached), "imagenet"
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"weights: {str(weights)!r} is neither 'imagenet', 'random' nor an existing file "
                f"(looked for {path.resolve()})"
            )
        state, source, label = plumbing.load_weight_file(path), str(path), f"file:{path.resolve()}"
    model.body.load_state_dict(_features_state_dict(state, source, model))
    model.weights_source = label
    return model


class RandomWeightsWarning(UserWarning):
    """A loss network runs with random weights (asked for explicitly)."""
