"""Colab set-up shared by every notebook (each notebook's first code cell).

Every notebook's first code cell is ``setup_cell(trains)`` verbatim (``tests/test_notebooks.py``
checks it: ``SETUP_CELL`` in most, ``setup_cell(trains=True)`` in the notebooks that train), so the
repository address is written here once, in ``REPO_URL``: the install line and every Colab badge
(``colab_url``) follow it. Publishing the course under another address means changing this line
and running ``tools/colab_links.py``, which rewrites the notebooks' checked copies (README,
"Publishing the course").
"""

from types import ModuleType

import torch

from bidsnet_lib import default_device

REPO_URL = "https://github.com/bidsnet-course/bidsnet-course"
# The notebooks that train a model: their first cell says how to switch a CPU-only Colab runtime
# to a GPU (setup_cell(trains=True)).
TRAINING_NOTEBOOKS = frozenset({"04_bfi_sff", "05_losses", "06_training", "07_evaluation", "09_ablations"})
WHEEL_PATTERN = "bidsnet_course-*.whl"  # what `make wheel` builds (dist/); uploaded to Colab's /content

# Shown, instead of a traceback, when the install fails: no network, or REPO_URL not (yet) the
# course's public address.
# {source}: what pip was given, {said}: pip's last error line (both filled in by the cell); {repo}:
# REPO_URL (filled in by setup_cell).
INSTALL_HELP = (
    "Could not install bidsnet_lib from {source} (no network, or the course is not published at "
    "that address; pip said: {said}). Either upload the wheel that `make wheel` builds in a clone "
    "of the course (dist/" + WHEEL_PATTERN + ") with the folder icon on the left, then run this "
    "cell again; or install a clone in a cell, `!git clone {repo} course && pip install -e course` "
    "(with the course's real address if this one is wrong), then Runtime → Restart session and "
    "run this cell again."
)

SWITCH_TO_GPU = (
    "This notebook trains, and this Colab runtime has no GPU: it will run, but slowly, on smaller "
    "settings where the notebook allows. To switch: Runtime → Change runtime type → Hardware "
    "accelerator: T4 GPU → Save, then run the notebook again from the top (the switch starts a "
    "new session)."
)


def _message_lines(template: str, indent: str, width: int = 96) -> str:
    """``template`` as implicitly joined f-string pieces, one a line, for the cell's source."""
    pieces, line = [], ""
    for word in template.split(" "):
        if line and len(indent) + len(line) + len(word) + 4 > width:
            pieces.append(line)
            line = ""
        line += word + " "
    pieces.append(line.rstrip())
    return f"\n{indent}".join(("f" if "{" in piece else "") + f'"{piece}"' for piece in pieces)


def setup_cell(trains: bool = False) -> str:
    """The first code cell of a notebook: installs bidsnet_lib on Colab (an uploaded wheel first,
    else the repository, keeping Colab's own torch; a failure ends the cell with ``INSTALL_HELP``,
    not a traceback) and calls ``setup_notebook``. ``trains``: the notebook trains a model, so on a
    CPU-only Colab runtime the cell's output says how to switch to a GPU."""
    if not isinstance(trains, bool):
        raise TypeError(f"trains: got {trains!r}, expected True or False")
    message = _message_lines(INSTALL_HELP.replace("{repo}", REPO_URL), " " * 25)
    return f'''\
# Colab set-up: installs bidsnet_lib (an uploaded {WHEEL_PATTERN} first, else the repository;
# Colab's own torch stays) and enables Colab's widget manager. Elsewhere it only picks the device.
import glob
import importlib.util
import subprocess
import sys

try:
    import google.colab  # noqa: F401

    IN_COLAB = True
except ImportError:
    IN_COLAB = False
if IN_COLAB and not importlib.util.find_spec("bidsnet_lib"):
    source = (sorted(glob.glob("{WHEEL_PATTERN}")) or ["git+{REPO_URL}"])[-1]
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], capture_output=True, text=True)
    if pip.returncode:  # one message saying what to do, not pip's traceback
        lines = pip.stderr.strip().splitlines() or ["no message"]
        said = ([line for line in lines if line.lower().startswith("error")] or lines)[-1]  # not pip's hints
        raise SystemExit({message})
from bidsnet_lib.colab import setup_notebook

DEVICE = setup_notebook({"trains=True" if trains else ""})'''


SETUP_CELL = setup_cell()


def colab_url(notebook: str) -> str:
    """The address that opens ``notebooks/<notebook>`` of the repository in Colab."""
    colab = REPO_URL.replace("https://github.com/", "https://colab.research.google.com/github/")
    return f"{colab}/blob/main/notebooks/{notebook}"


def published_url(relative: str) -> str:
    """The raw address of ``relative`` (e.g. "docs/ablations/fusion.json") on the repository's main
    branch: what a bare install (Colab) downloads of the results committed beside the code."""
    raw = REPO_URL.replace("https://github.com/", "https://raw.githubusercontent.com/")
    return f"{raw}/main/{relative.lstrip('/')}"


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def runtime_report(device: torch.device, trains: bool = False) -> str:
    """What the first cell prints on Colab: the runtime found and, for a notebook that trains on a
    runtime without a GPU, how to switch to one."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"Colab runtime: GPU, {props.name} ({props.total_memory / 2**30:.0f} GiB)"
    found = f"Colab runtime: {device.type.upper()} only, no GPU"
    return f"{found}. {SWITCH_TO_GPU}" if trains else found


def setup_notebook(colab: ModuleType | None = None, trains: bool = False) -> torch.device:
    """Enable Colab's custom widget manager when in Colab; return the device to compute on. On
    Colab it prints the runtime found (``runtime_report``)."""
    if colab is None and in_colab():
        import google.colab as colab
    if colab is not None:
        # Custom widgets (the mask-painting canvas) render in Colab only with its manager on.
        colab.output.enable_custom_widget_manager()
    device = default_device()
    print(f"bidsnet_lib ready on {device}" + (" in Colab" if colab is not None else ""))
    if colab is not None:
        print(runtime_report(device, trains))
    return device
