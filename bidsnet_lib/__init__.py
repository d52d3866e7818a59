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
