"""Colab set-up shared by every notebook (each notebook's first code cell).

Every notebook's first code cell is ``SETUP_CELL`` verbatim (``tests/test_notebooks.py`` checks
it), so the repository URL is written here once and the notebooks carry checked copies.
"""

from types import ModuleType

import torch

from bidsnet_lib import default_device

REPO_URL = "https://github.com/bidsnet-course/bidsnet-course"

# Installing with pip keeps Colab's torch: the package asks only for torch>=2.2.
SETUP_CELL = f'''\
# Colab set-up: installs bidsnet_lib from the repository (keeping Colab's own torch) and enables
# Colab's widget manager. Elsewhere it only picks the device.
import importlib.util
import subprocess
import sys

try:
    import google.colab  # noqa: F401

    IN_COLAB = True
except ImportError:
    IN_COLAB = False
if IN_COLAB and not importlib.util.find_spec("bidsnet_lib"):
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+{REPO_URL}"], check=True)
from bidsnet_lib.colab import setup_notebook

DEVICE = setup_notebook()'''


def colab_url(notebook: str) -> str:
    """The address that opens ``notebooks/<notebook>`` of the repository in Colab."""
    colab = REPO_URL.replace("https://github.com/", "https://colab.research.google.com/github/")
    return f"{colab}/blob/main/notebooks/{notebook}"


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def setup_notebook(colab: ModuleType | None = None) -> torch.device:
    """Enable Colab's custom widget manager when in Colab; return the device to compute on."""
    if colab is None and in_colab():
        import google.colab as colab
    if colab is not None:
        # Custom widgets (the mask-painting canvas) render in Colab only with its manager on.
        colab.output.enable_custom_widget_manager()
    device = default_device()
    print(f"bidsnet_lib ready on {device}" + (" in Colab" if colab is not None else ""))
    return device
