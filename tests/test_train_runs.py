"""bidsnet_lib.train (runs): a run folder's rules (what a new run refuses, what a resume checks),
folders compared resolved, the photos by name, and stopping on SIGINT/SIGTERM."""

import dataclasses
import os
import signal
import threading
from pathlib import Path

import pytest
import torch

from bidsnet_lib.checkpoint import REQUIRED_KEYS, TRAIN_FORMAT, CheckpointError, save_checkpoint
from bidsnet_lib.losses import LossConfig
from bidsnet_lib.model import BIDSNet, BIDSNetConfig
from bidsnet_lib.train import (
    PATH_FIELDS,
    RESUME_OVERRIDABLE,
    RUN_FILES,
    STOP_SIGNALS,
    StopRequest,
    TrainConfig,
    check_fresh_dir,
    check_resumable,
    config_differences,
    ignore_stop_signals,
    photo_identity,
    require_checkpoint,
    resolve_paths,
)

TINY = BIDSNetConfig(width=8, channel_mults=(1, 2), cnn_depths=(1,), trans_depths=(1,), cnn_bottleneck_depth=1,
                     trans_bottleneck_depth=1, heads=1, dim_head=8, nb_features=8)


@pytest.fixture
def handlers_restored():
    """The stop signals' handlers are process-wide: put them back for the other tests."""
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def photo_folder(root: Path, *names: str) -> Path:
    """A folder of empty files named like photos: photo_identity trusts the names."""
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


# ------------------------------------------------------------------------------ folders and photos
def test_resolve_paths_makes_every_folder_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(data=("photos", "more/../other"), val_data=("./val",), mask_folder="masks")
    resolved = resolve_paths(config)
    assert resolved.data == (str(tmp_path / "photos"), str(tmp_path / "other"))
    assert resolved.val_data == (str(tmp_path / "val"),) and resolved.mask_folder == str(tmp_path / "masks")
    assert config.data == ("photos", "more/../other")  # a new config; the given one is unchanged
    assert resolve_paths(TrainConfig(data=("x",))).mask_folder is None
    assert set(PATH_FIELDS) <= {f.name for f in dataclasses.fields(TrainConfig)}


def test_photo_identity_counts_and_hashes_the_relative_names(tmp_path):
    a = photo_folder(tmp_path / "a", "1.png", "sub/2.jpg", "notes.txt")
    b = photo_folder(tmp_path / "b", "1.png", "sub/2.jpg")
    identity = photo_identity([a])
    assert identity["count"] == 2 and len(identity["names_sha256"]) == 64
    assert photo_identity([b]) == identity  # the same names in another place: the same photos
    (b / "sub" / "2.jpg").rename(b / "sub" / "3.jpg")
    renamed = photo_identity([b])
    assert renamed["count"] == 2 and renamed["names_sha256"] != identity["names_sha256"]
    assert photo_identity([a, b])["count"] == 4
    with pytest.raises(ValueError, match="roots: .*is not a folder"):
        photo_identity([tmp_path / "absent"])


def test_config_differences_name_nested_fields_and_compare_folders_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    saved = TrainConfig(data=(str(tmp_path / "photos"),), mask_folder=str(tmp_path / "m"))
    assert config_differences(saved, TrainConfig(data=("./photos/",), mask_folder="m")) == []
    given = dataclasses.replace(saved, steps=5, loss=LossConfig(style=1.0), data=("elsewhere",))
    assert config_differences(saved, given) == [
        ("loss.style", LossConfig.paper().style, 1.0), ("data", saved.data, ("elsewhere",)), ("steps", 100_000, 5)]
    assert config_differences(saved, given, skip=("loss", "data", "steps")) == []
    assert config_differences(saved, dataclasses.replace(saved, mask_folder=None)) == [
        ("mask_folder", str(tmp_path / "m"), None)]


# ------------------------------------------------------------------------------ a new run's folder
def test_check_fresh_dir_takes_a_new_or_empty_folder(tmp_path):
    check_fresh_dir(tmp_path / "new", overwrite=False)
    (tmp_path / "empty").mkdir()
    check_fresh_dir(tmp_path / "empty", overwrite=False)
    assert not (tmp_path / "new").exists()  # nothing created by a check


def test_check_fresh_dir_refuses_a_run_a_file_and_other_files(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "latest.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"out_dir: .*run already holds a run .*pass resume=True \(--resume\)"):
        check_fresh_dir(tmp_path / "run", overwrite=True)  # overwrite never replaces a checkpointed run
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"out_dir: got '.*file', expected a folder for the run; it is a file"):
        check_fresh_dir(tmp_path / "file", overwrite=False)
    other = photo_folder(tmp_path / "other", *(f"{i}.tex" for i in range(7)))
    with pytest.raises(ValueError, match=r"expected a new or empty folder; it holds 0.tex, 1.tex, 2.tex, 3.tex, "
                                         r"4.tex \.\.\. \(files that are not a run's\)"):
        check_fresh_dir(other, overwrite=False)


def test_check_fresh_dir_with_overwrite_clears_the_old_log_and_samples_only(tmp_path):
    run = photo_folder(tmp_path / "run", "samples/step_0000003.png", "samples/keep.png")
    (run / "metrics.jsonl").write_text('{"step": 3}\n')
    (run / "config.json").write_text("{}")
    assert {"metrics.jsonl", "config.json", "samples"} <= set(RUN_FILES)
    with pytest.raises(ValueError, match="the files of a run stopped before its first checkpoint"):
        check_fresh_dir(run, overwrite=False)
    check_fresh_dir(run, overwrite=True, clear=False)  # another rank: it leaves the files to rank 0
    assert (run / "metrics.jsonl").exists() and (run / "samples" / "step_0000003.png").exists()
    check_fresh_dir(run, overwrite=True)
    assert not (run / "metrics.jsonl").exists() and not (run / "samples" / "step_0000003.png").exists()
    assert (run / "samples" / "keep.png").exists() and (run / "config.json").exists()


# ------------------------------------------------------------------------------ a resume
def test_require_checkpoint_returns_latest_pt_and_removes_stale_temps(tmp_path):
    save_checkpoint(dict.fromkeys(REQUIRED_KEYS[TRAIN_FORMAT], 0), tmp_path / "latest.pt", TRAIN_FORMAT)
    (tmp_path / ".latest.pt.123.abcdef12.tmp").write_bytes(b"half")
    (tmp_path / ".other.pt.1.2.tmp").write_bytes(b"kept")
    assert require_checkpoint(tmp_path) == tmp_path / "latest.pt"
    assert not (tmp_path / ".latest.pt.123.abcdef12.tmp").exists() and (tmp_path / ".other.pt.1.2.tmp").exists()


def test_require_checkpoint_explains_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"out_dir: got '.*absent', expected the folder of a run to "
                                                r"resume; there is no such folder \(drop --resume to start one\)"):
        require_checkpoint(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match=r"it holds no run \(no latest.pt, no config.json\)"):
        require_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text("not json")
    with pytest.raises(FileNotFoundError, match=r"stopped before its first checkpoint; nothing can be resumed"):
        require_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text('{"checkpoint_every": 50}')
    (tmp_path / "metrics.jsonl").write_text('{"step": 10}\n\n{"step": 40}\n')
    with pytest.raises(FileNotFoundError, match=r"at step 50 \(it had logged up to step 40\); nothing can be "
                                                r"resumed: start it again without --resume and with --overwrite"):
        require_checkpoint(tmp_path)


def resumable(config: TrainConfig, step: int = 3, photos=None) -> dict:
    weights = BIDSNet(config.model).state_dict()
    return {"step": step, "model": weights, "ema": dict(weights), "meta": {} if photos is None else {"photos": photos}}


def test_check_resumable_lets_overridable_fields_and_more_steps_through(tmp_path):
    saved = dataclasses.replace(TrainConfig.small(), model=TINY, steps=3, lr_g=5e-4)
    given = dataclasses.replace(saved, steps=9, log_every=1, num_workers=1)
    check_resumable(resumable(saved), tmp_path / "latest.pt", saved, given, RESUME_OVERRIDABLE)
    with pytest.raises(ValueError, match=r"config: differs from the run in .*latest.pt in 2 field\(s\) a resumed "
                                         r"run may not change \(only steps, num_workers may; .*\):\n  lr_g: saved 0.0005, "
                                         r"given 0.1\n  log_every: saved 10, given 1$"):
        check_resumable(resumable(saved), tmp_path / "latest.pt", saved, dataclasses.replace(given, lr_g=0.1),
                        ("steps", "num_workers"))
    with pytest.raises(ValueError, match="steps: got 2, expected at least the run's step 3"):
        check_resumable(resumable(saved), tmp_path / "latest.pt", saved, dataclasses.replace(saved, steps=2),
                        RESUME_OVERRIDABLE)


def test_check_resumable_compares_the_photos_not_the_folder_names(tmp_path):
    first = photo_folder(tmp_path / "first", "a.png", "b.png")
    moved = photo_folder(tmp_path / "moved", "a.png", "b.png")
    fewer = photo_folder(tmp_path / "fewer", "a.png")
    saved = dataclasses.replace(TrainConfig.small(), model=TINY, data=(str(first),))
    checkpoint = resumable(saved, photos=photo_identity(saved.data))
    check_resumable(checkpoint, tmp_path / "latest.pt", saved, dataclasses.replace(saved, data=(str(moved),)), ())
    with pytest.raises(ValueError, match=r"data: the folders do not hold the photos the run trained on \(2 then, "
                                         r"1 now\); saved \[.*first'\], given \[.*fewer'\]"):
        check_resumable(checkpoint, tmp_path / "latest.pt", saved, dataclasses.replace(saved, data=(str(fewer),)), ())
    (moved / "b.png").rename(moved / "c.png")
    with pytest.raises(ValueError, match=r"\(2 then, 2 now, other names\)"):
        check_resumable(checkpoint, tmp_path / "latest.pt", saved, dataclasses.replace(saved, data=(str(moved),)), ())


def test_check_resumable_refuses_non_finite_weights_and_shapes_that_do_not_fit(tmp_path):
    saved = dataclasses.replace(TrainConfig.small(), model=TINY)
    checkpoint = resumable(saved)
    name = next(iter(checkpoint["ema"]))
    checkpoint["ema"][name] = torch.full_like(checkpoint["ema"][name], float("inf"))
    with pytest.raises(CheckpointError, match=f"ema weights tensor '{name}' holds .* NaN or infinite"):
        check_resumable(checkpoint, tmp_path / "latest.pt", saved, saved, ())
    crafted = dataclasses.replace(saved, model=dataclasses.replace(TINY, width=10**6))
    with pytest.raises(CheckpointError, match="its model config does not fit its weights"):
        check_resumable(resumable(saved), tmp_path / "latest.pt", crafted, crafted, ())


# ------------------------------------------------------------------------------ stopping on a signal
@pytest.mark.parametrize("sig", STOP_SIGNALS)
def test_a_stop_signal_sets_the_flag_once_then_acts_as_usual(sig, handlers_restored):
    before = signal.getsignal(sig)
    with StopRequest() as stop:
        assert stop.signal is None and signal.getsignal(sig) != before
        signal.raise_signal(sig)  # caught: no KeyboardInterrupt, no exit
        assert stop.signal == sig
        assert signal.getsignal(sig) == before  # the next one is not caught
    assert signal.getsignal(sig) == before and set(STOP_SIGNALS) == {signal.SIGINT, signal.SIGTERM}


def test_stop_request_restores_the_handlers_and_installs_none_off_the_main_thread(handlers_restored):
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    with StopRequest():
        assert all(signal.getsignal(sig) != before[sig] for sig in STOP_SIGNALS)
    assert {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} == before
    seen = []

    def worker():
        with StopRequest() as stop:
            seen.append(({sig: signal.getsignal(sig) for sig in STOP_SIGNALS}, stop.signal))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [(before, None)]


def test_ignore_stop_signals_is_for_dataloader_workers(handlers_restored):
    ignore_stop_signals(0)
    assert all(signal.getsignal(sig) == signal.SIG_IGN for sig in STOP_SIGNALS)
    os.kill(os.getpid(), signal.SIGINT)  # ignored: the test goes on
