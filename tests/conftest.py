"""Shared test set-up: small mode everywhere, a fixed torch seed, shared fixtures."""

import os
import shutil
from pathlib import Path

import pytest
import torch
from course_files import ROOT

os.environ.setdefault("BIDSNET_SMALL", "1")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(autouse=True)
def seeded_torch():
    """Every test starts from the same global torch seed: a statistical check cannot flake."""
    torch.manual_seed(0)


# Four shipped test photos (those held out since issue 3): runs on them stay quick and their counts
# fixed however many photos data/images/test holds.
FOUR_PHOTOS = ("lomiri_greentock_by_peter_nerlich", "lomiri_life_by_aitzol_berasategi",
               "lomiri_seeding_by_clements_engelhardt", "skimage_rocket")


@pytest.fixture(scope="session")
def four_photos(tmp_path_factory) -> Path:
    """A folder holding copies of the four ``FOUR_PHOTOS`` (JPEG, 512 px on the short side)."""
    folder = tmp_path_factory.mktemp("photos")
    for name in FOUR_PHOTOS:
        shutil.copy(ROOT / "data" / "images" / "test" / f"{name}.jpg", folder)
    return folder


@pytest.fixture
def hub_checkpoints(monkeypatch, tmp_path) -> Path:
    """A fresh TORCH_HOME and no network: returns torch.hub's (empty) checkpoint directory."""
    from bidsnet_lib import plumbing

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(plumbing, "reachable", lambda url, timeout=2.0: False)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def made_up_fusion_report():
    """A fusion report with made-up scores: 8 mask groups, 6 photos, 2 seeds, Telea as the baseline."""
    from bidsnet_lib.ablate import STUDIES, AblationSettings, StudyReport

    study = STUDIES["fusion"]

    def rows(method, psnr):
        return [{"set": "Set I", "group": f"g{g}", "hole_ratio": 0.1 * g, "n": 4, "method": method,
                 "metric": metric, "value": value - g / 10, "std": 0.5}
                for g in range(8) for metric, value in (("psnr", psnr), ("ssim", psnr / 40))]

    def photos(psnr):  # 6 photos around the run's score, the same spread for every run
        return {metric: {f"p{k}.png": value + (k - 2.5) / 5 for k in range(6)}
                for metric, value in (("psnr", psnr - 0.35), ("ssim", psnr / 40 - 0.35 / 40))}

    records = {v.name: [{"key": v.name, "seed": seed, "params": 1000 + i, "train_seconds": 60.0,
                         "eval_seconds": 5.0, "rows": rows(v.name, 25 + i + seed / 10),
                         "photos": photos(25 + i + seed / 10)}
                        for seed in range(2)] for i, v in enumerate(study.variants)}
    return StudyReport(study, list(study.variants), {v.name: v.name for v in study.variants}, records,
                       rows("Telea (r=3)", 24), AblationSettings.quick_preset(), "made up")


def pytest_collection_modifyitems(items):
    """The order `make test`'s two xdist workers take the work in (one module or notebook each at
    a time, --no-loadscope-reorder): the notebooks first (the longest units), then the test
    modules, the site last: it renders the notebooks' executed copies from this run."""
    def cost(item):
        if item.get_closest_marker("site") or item.path.name == "test_site.py":
            return 2
        return 0 if item.path.suffix == ".ipynb" else 1

    items.sort(key=cost)
