"""Regression tests of the hostile passes (issue 30): interrupted work is never recorded as
finished, no command writes into a folder it reads, a damaged cache entry is recomputed.

Each test reproduces one reported defect through the path a user takes (the command, or the
library function the command calls) and fails on the code before its fix.
"""

import os
import shutil
import signal
import subprocess

import numpy as np
import pytest

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


def test_evaluate_never_writes_into_a_folder_it_reads(tmp_path, capsys):
    """#30.3: --out equal to --images replaced a photo named examples.png with the report grid."""
    from bidsnet_lib.commands.evaluate import main as evaluate_main

    photos = few_photos(tmp_path / "photos")
    (photos / "examples.png").write_bytes(b"a photo of the user's")
    before = sorted(p.name for p in photos.iterdir())
    for out in (photos, photos / "results"):
        assert evaluate_main(["--checkpoint", str(tmp_path / "model.pt"), "--images", str(photos), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "--out: got" in err and f"the --images folder {str(photos)!r}" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in photos.iterdir()) == before and (photos / "examples.png").read_bytes() == b"a photo of the user's"


def test_no_command_writes_into_a_folder_it_reads(tmp_path, capsys):
    """#30.3 beyond evaluate: train, ablate and the mask gallery read folders recursively, so an
    output folder inside one would come back as input (samples as training photos)."""
    from bidsnet_lib.commands.masks import main as masks_main
    from bidsnet_lib.commands.train import main as train_main

    photos = few_photos(tmp_path / "photos")
    assert masks_main(["gallery", "--photos", str(photos), "--out", str(photos / "gallery")]) == 2
    assert "lies inside the --photos folder" in capsys.readouterr().err
    assert train_main(["--data", str(photos), "--out", str(photos / "run"), "--steps", "1", "--processes", "1"]) == 2
    assert "out_dir: got" in capsys.readouterr().err
    assert ablate_main(["--study", "fusion", "--quick", "--images", str(photos), "--out", str(photos)]) == 2
    assert "it is the test images folder" in capsys.readouterr().err
    assert sorted(p.name for p in photos.iterdir()) == sorted(p.name for p in image_files(SHIPPED_IMAGES)[:2])


def test_evaluate_refuses_two_photos_sharing_a_stem(tmp_path):
    """#30.5: a.png and a.jpg were read into one dict by stem: 4 files, the table said 3."""
    from bidsnet_lib.evaluate import load_photos

    photos = few_photos(tmp_path / "photos")
    first = image_files(photos)[0]
    shutil.copy2(first, photos / f"{first.stem}.png")
    with pytest.raises(ValueError, match=f"share the stem '{first.stem}'"):
        load_photos(photos, 64)


@pytest.fixture
def read_only(tmp_path):
    """A folder nothing can be written into, root included (chattr +i where chmod is not enough)."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    immutable = False
    if os.access(folder, os.W_OK):  # root ignores permissions
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
        if not immutable:
            folder.chmod(0o700)
            pytest.skip("no way to make a read-only folder here")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o700)


def test_evaluate_checks_a_read_only_out_before_the_work(tmp_path, read_only, capsys):
    """#30.10: a read-only --out failed only after the whole evaluation (here the checkpoint,
    loaded first of the work, is missing: the --out error must come before)."""
    from bidsnet_lib.commands.evaluate import main as evaluate_main

    assert evaluate_main(["--checkpoint", str(tmp_path / "model.pt"), "--images", str(few_photos(tmp_path / "p")),
                          "--out", str(read_only / "sub")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write in {str(read_only / 'sub')!r} (" in err and len(err.splitlines()) == 1


def test_an_interrupted_masks_write_leaves_the_old_set_whole(tmp_path, monkeypatch, capsys):
    """#30.7: Ctrl-C during `masks write` left 1,067 files of the new seed beside 2,133 of the old."""
    import sys

    from bidsnet_lib.commands.masks import main as masks_main
    from bidsnet_lib.masks import SHIPPED_MASKS, write_eval_set

    out = tmp_path / "masks"
    write_eval_set(out, size=32, seed=0, per_bin=2, per_preset=2)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    files = sys.modules["bidsnet_lib.masks.files"]
    real, calls = files.atomic_write, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(files, "atomic_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_eval_set(out, size=32, seed=1, per_bin=2, per_preset=2)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks"]  # no temporary folder left
    monkeypatch.setattr(files, "atomic_write", real)
    paths = write_eval_set(out, size=32, seed=1, per_bin=1, per_preset=1)  # then a whole new set, nothing old
    assert sorted(p.relative_to(out) for p in out.rglob("*.png")) == sorted(p.relative_to(out) for p in paths)
    assert "--seed 1" in (out / "README.md").read_text()
    # The shipped set is never the default, nor a target.
    shipped = sorted(SHIPPED_MASKS.rglob("*"))
    assert masks_main(["write"]) == 2 and "--out" in capsys.readouterr().err
    assert masks_main(["write", "--out", str(SHIPPED_MASKS), "--size", "32"]) == 2
    assert "the shipped set is read-only" in capsys.readouterr().err
    assert sorted(SHIPPED_MASKS.rglob("*")) == shipped
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert masks_main(["write", "--out", str(tmp_path / "mine"), "--size", "32"]) == 2
    assert "it holds notes.txt" in capsys.readouterr().err


def test_a_run_folder_has_one_writer_at_a_time(tmp_path, capsys):
    """#30.2: two `bidsnet train` into one --out both ran, interleaving metrics.jsonl and losing weights."""
    import sys
    import time

    from bidsnet_lib.commands.train import main as train_main
    from bidsnet_lib.train import TrainConfig, preflight

    photos, out = few_photos(tmp_path / "photos"), tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from bidsnet_lib.train import RunLock; "
                               f"RunLock({str(out)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout.readline().strip() == "held"
        args = ["--data", str(photos), "--out", str(out), "--steps", "1", "--processes", "1", "--size", "32",
                "--stages", ""]
        assert train_main(args) == 2
        err = capsys.readouterr().err
        assert f"is being written by another run (process {holder.pid} on" in err and len(err.splitlines()) == 1
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing of the second run
    finally:
        holder.kill()  # killed, not stopped: the kernel drops its lock, none is left stale
        holder.wait()
    config = TrainConfig.small()
    config.data = (str(photos),)
    time.sleep(0.1)
    with Trainer(config, out, checked=preflight(config, out)) as first:
        again = Trainer(config, out, overwrite=True)  # the same process (a notebook) may open it again
        again.close()
        assert (out / ".lock").is_file() and first.out_dir == out
    assert not (out / ".lock").exists()  # released with the last Trainer


def test_what_a_crash_leaves_in_a_run_folder_does_not_block_resume(tmp_path, capsys):
    """#30.9: an empty latest.pt, a torn last line of metrics.jsonl or stray temporary files made
    resume impossible; the newest checkpoint that loads is used and the skipped ones are named."""
    from bidsnet_lib.commands.train import main as train_main

    photos, out = few_photos(tmp_path / "photos"), tmp_path / "run"
    tiny = ["--data", str(photos), "--out", str(out), "--processes", "1", "--size", "32", "--stages", "",
            "--adversarial", "0", "--batch-size", "2", "--val-size", "2", "--validate-every", "0", "--sample-every", "0",
            "--checkpoint-every", "1", "--keep-every", "1", "--log-every", "1", "--no-progress"]
    assert train_main([*tiny, "--steps", "2"]) == 0
    (out / "latest.pt").write_bytes(b"")  # killed by a full disk in a copy, or truncated by hand
    whole = (out / "step_0000002.pt").read_bytes()
    (out / "step_0000002.pt").write_bytes(whole[: len(whole) // 2])
    with open(out / "metrics.jsonl", "a") as log:
        log.write('{"step": 3, "g_to')  # torn mid-append
    (out / ".latest.pt.0123abcd.tmp").write_bytes(b"half a checkpoint")
    (out / ".metrics.jsonl.89abcdef.tmp").write_text("")
    capsys.readouterr()
    assert train_main([*tiny, "--steps", "3", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "note: skipped " in err and "latest.pt: got a file that is empty" in err and "step_0000002.pt" in err
    assert "resuming from step_0000001.pt" in err and "Traceback" not in err
    from bidsnet_lib.train import read_metrics, read_run_config

    assert [row["step"] for row in read_metrics(out) if "g_total" in row] == [1, 2, 3]
    assert read_run_config(out).steps == 3 and not list(out.glob(".*.tmp"))


def test_train_answers_os_errors_in_one_line_and_leaves_nothing(tmp_path, read_only, capsys):
    """#30.8: a read-only --out, --out FILE/sub and a name too long ended in tracebacks."""
    from bidsnet_lib.commands.train import main as train_main

    photos = few_photos(tmp_path / "photos")
    (tmp_path / "file").write_text("")
    for out, cause in ((read_only / "run", "cannot write in"), (tmp_path / "file" / "run", "/file' is a file"),
                       (tmp_path / ("x" * 300) / "run", "longer than the file system allows")):
        assert train_main(["--data", str(photos), "--out", str(out), "--processes", "1", "--steps", "1"]) == 2, out
        err = capsys.readouterr().err
        assert cause in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "photos", "readonly"]


def test_a_full_disk_at_a_checkpoint_is_named_and_the_old_one_kept(tmp_path, monkeypatch, capsys):
    """#30.8: disk full during a checkpoint said "unexpected pos ..." in a traceback."""
    import errno

    import torch

    from bidsnet_lib import plumbing
    from bidsnet_lib.commands.train import main as train_main

    real_fdopen = os.fdopen

    class FullDisk:  # room for a config.json, not for a checkpoint
        def __init__(self, stream):
            self.stream, self.written = stream, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 64_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.stream.write(data)

        def __getattr__(self, name):
            return getattr(self.stream, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.stream.close()

    target = plumbing.atomic_save({"w": torch.zeros(3)}, tmp_path / "kept.pt")
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match=r"cannot write '.*kept.pt' \(no space left on the disk\)") as caught:
        plumbing.atomic_save({"w": torch.ones(100_000)}, target)
    assert caught.value.errno == errno.ENOSPC and torch.load(target)["w"].shape == (3,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.pt"]
    # The command: one line, exit 2 (the disk fills at the first checkpoint).
    photos = few_photos(tmp_path / "photos")
    assert train_main(["--data", str(photos), "--out", str(tmp_path / "run"), "--processes", "1", "--steps", "1",
                       "--size", "32", "--stages", "", "--batch-size", "1", "--val-size", "1", "--validate-every", "0",
                       "--sample-every", "0", "--adversarial", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "latest.pt' (no space left on the disk)" in err and len(err.splitlines()) == 1
    assert not list((tmp_path / "run").glob("*.pt")) and not list((tmp_path / "run").glob(".*.tmp"))
    assert "[Errno" not in err


def test_init_weights_that_cannot_start_a_run_are_refused_in_one_line(tmp_path, capsys):
    """#30.8: --init weights holding NaN, or a config they do not fit (width 10**6: 9 TB), gave
    27- to 585-line tracebacks where `bidsnet inpaint` refuses the same files in one line."""
    from bidsnet_lib.checkpoint import INFERENCE_FORMAT, save_checkpoint
    from bidsnet_lib.commands.train import main as train_main
    from bidsnet_lib.model import BIDSNetConfig, build_model

    config = BIDSNetConfig.small()
    weights = build_model(config).state_dict()
    nan = {k: v.clone() for k, v in weights.items()}
    first = next(k for k, v in nan.items() if v.is_floating_point())
    nan[first].view(-1)[0] = float("nan")
    huge = {**config.to_dict(), "width": 10**6}
    photos = few_photos(tmp_path / "photos")
    for name, state, stored, message in (("nan.pt", nan, config.to_dict(), "NaN or infinite"),
                                         ("huge.pt", weights, huge, "does not fit its weights")):
        save_checkpoint({"model": state, "config": stored, "meta": {}}, tmp_path / name, INFERENCE_FORMAT)
        assert train_main(["--data", str(photos), "--out", str(tmp_path / "run"), "--processes", "1",
                           "--init", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert message in err and name in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "run").exists()


def test_ctrl_c_while_a_command_sets_up_is_one_line(monkeypatch, capsys):
    """#30.8: SIGINT in train's first seconds (torch loading) printed 81 lines."""
    import importlib

    from bidsnet_lib import cli

    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib, "import_module", interrupted)
    assert cli.main(["train", "--out", "x"]) == 130
    assert capsys.readouterr().err == "bidsnet train: interrupted\n"


def test_train_size_not_a_multiple_of_the_stride_is_refused_when_given(tmp_path, capsys):
    """#30.10: `train --size 40` trained and exported a model that `inpaint` then refused."""
    from bidsnet_lib.commands.train import main as train_main

    assert train_main(["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--size", "40"]) == 2
    assert "size: got 40, expected a positive multiple of the model's stride 16" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_masks_outside_every_hole_ratio_bin_are_noted(tmp_path):
    """#30.10: masks in no hole-ratio bin were dropped from an evaluation without a word."""
    from PIL import Image

    from bidsnet_lib.evaluate import load_mask_groups

    for name, rows in (("a.png", 16), ("b.png", 20), ("tiny.png", 1)):  # 25 %, 31 %, 1.6 % of 64x64
        mask = np.zeros((64, 64), np.uint8)
        mask[:rows] = 255
        Image.fromarray(mask).save(tmp_path / name)
    with pytest.warns(UserWarning, match=r"1 of the 3 masks in .* are left out: their hole ratios \(1.6%\) are in "
                                         r"none of the bins .* e.g. tiny.png"):
        groups = load_mask_groups(tmp_path)
    assert sum(len(g.masks) for g in groups) == 2


def test_a_damaged_line_inside_the_log_does_not_block_resume(tmp_path):
    """Own pass: a metrics.jsonl line damaged mid-file (not only the last) stopped `--resume`."""
    from bidsnet_lib.train import read_metrics

    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2, "g_t\n{"step": 3}\n{"step": 4, "g')
    with pytest.raises(ValueError, match="line 2 is not a JSON row"):
        read_metrics(tmp_path)
    with pytest.warns(UserWarning, match="line 2 is not a JSON row.*left out"):
        assert [row["step"] for row in read_metrics(tmp_path, skip_damaged=True)] == [1, 3]
