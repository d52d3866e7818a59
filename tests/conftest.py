"""Shared test set-up: small mode everywhere, and the notebooks as parsed documents."""

import os
from pathlib import Path

import nbformat
import pytest
import torch

os.environ.setdefault("BIDSNET_SMALL", "1")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def read_notebook(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def cell_tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(autouse=True)
def seeded_torch():
    """Every test starts from the same global torch seed: a statistical check cannot flake."""
    torch.manual_seed(0)
