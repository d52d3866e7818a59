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


@pytest.fixture
def made_up_fusion_report():
    """A fusion report with made-up scores: 8 mask groups, 2 seeds, Telea as the baseline."""
    from bidsnet_lib.ablate import STUDIES, AblationSettings
    from bidsnet_lib.ablation_tables import StudyReport

    study = STUDIES["fusion"]

    def rows(method, psnr):
        return [{"set": "Set I", "group": f"g{g}", "hole_ratio": 0.1 * g, "n": 4, "method": method,
                 "metric": metric, "value": value - g / 10, "std": 0.5}
                for g in range(8) for metric, value in (("psnr", psnr), ("ssim", psnr / 40))]

    records = {v.name: [{"key": v.name, "seed": seed, "params": 1000 + i, "train_seconds": 60.0,
                         "eval_seconds": 5.0, "rows": rows(v.name, 25 + i + seed / 10)}
                        for seed in range(2)] for i, v in enumerate(study.variants)}
    return StudyReport(study, list(study.variants), {v.name: v.name for v in study.variants}, records,
                       rows("Telea (r=3)", 24), AblationSettings.quick_preset(), "made up")
