"""BIDS-Net image inpainting: the library that the course notebooks build, one concept a module."""

import os

__version__ = "0.1.0"


def default_device():
    """The GPU when there is one (Colab), the CPU otherwise (a torch.device)."""
    import torch  # here, not at the top: `bidsnet masks` and the mask benchmark need no torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def small_mode() -> bool:
    """True when BIDSNET_SMALL=1: notebooks, scripts and tests shrink their work to CPU size."""
    return os.environ.get("BIDSNET_SMALL", "0") == "1"


def rehearsal() -> bool:
    """True when BIDSNET_REHEARSAL=1 (``make rehearsal``): the notebooks keep full mode's sizes,
    presets, batches and configs, cut every training and evaluation loop to a few iterations, and
    use the explicit random backbones where full mode downloads pretrained ones; the library's
    evaluation loops keep one mask a group (``evaluate.load_mask_groups``)."""
    return os.environ.get("BIDSNET_REHEARSAL", "0") == "1"
