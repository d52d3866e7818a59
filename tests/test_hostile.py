"""Regression tests of the hostile passes (issue 30): interrupted work is never recorded as
finished, no command writes into a folder it reads, a damaged cache entry is recomputed.

Each test reproduces one reported defect through the path a user takes (the command, or the
library function the command calls) and fails on the code before its fix.
"""

import os
import shutil
import signal

import numpy as np

from bidsnet_lib.baselines import CachedBaseline, make_baseline
from bidsnet_lib.commands.ablate import main as ablate_main
from bidsnet_lib.plumbing import SHIPPED_IMAGES, image_files
from bidsnet_lib.train import Trainer


def few_photos(folder, n=2):
    folder.mkdir()
    for path in image_files(SHIPPED_IMAGES)[:n]:
        shutil.copy2(path, folder / path.name)
    return folder


def test_an_interrupted_ablation_run_is_not_recorded_as_finished(tmp_path, monkeypatch, capsys):
    """#30.1: SIGINT mid-run was evaluated, written as finished and its checkpoint deleted."""
    real_step = Trainer.train_step

    def interrupted_at_step_three(self, batch):
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C delivers; the trainer stops at the next step
        return real_step(self, batch)

    monkeypatch.setattr(Trainer, "train_step", interrupted_at_step_three)
    out = tmp_path / "out"
    args = ["--study", "fusion", "--quick", "--steps", "6", "--images", str(few_photos(tmp_path / "photos")),
            "--out", str(out)]
    assert ablate_main(args) == 128 + signal.SIGINT
    err = capsys.readouterr().err
    assert "interrupted by signal 2 at step 3 of 6" in err and "run the same command again to resume" in err
    # The first run (whichever the plan starts with) keeps its checkpoint; nothing is recorded as finished.
    assert len(list(out.glob("runs/*/seed*/latest.pt"))) == 1
    assert not list(out.glob("runs/*/seed*/results.json")) and not list(out.glob("runs/*/seed*/model.pt"))
    assert not (out / "fusion.json").exists()  # no verdict from a part-trained run


def test_a_damaged_baseline_cache_file_is_recomputed(tmp_path):
    """#30.6: a truncated or bit-flipped cache file raised BadZipFile / zlib.error in every later evaluation."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    hole = np.zeros((48, 48), np.uint8)
    hole[10:30, 12:40] = 1
    cached = CachedBaseline(make_baseline("telea"), tmp_path / "cache")
    first = cached.fill(rgb, hole)
    path = cached.path(rgb, hole != 0)
    whole = path.read_bytes()
    flipped = bytearray(whole)
    start = whole.index(b"fill.npy") + 60  # inside the compressed member, past its local header
    flipped[start:start + 24] = bytes(b ^ 0xFF for b in flipped[start:start + 24])
    for damaged in (whole[: len(whole) // 2], bytes(flipped)):
        path.write_bytes(damaged)
        np.testing.assert_array_equal(cached.fill(rgb, hole), first)
        assert path.read_bytes() == whole or np.load(path)["fill"].shape == (int(hole.sum()), 3)  # rewritten
