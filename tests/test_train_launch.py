"""bidsnet_lib.train's launch part: the checks before a run (run once a process) and the local
process group of `bidsnet train`."""

import dataclasses
import os
import socket
import textwrap

import numpy as np
import pytest
import torch
import torch.distributed as dist
from PIL import Image

from bidsnet_lib.commands.train import main
from bidsnet_lib.losses import LossConfig
from bidsnet_lib.model import BIDSNetConfig
from bidsnet_lib.train import (
    LocalRanks,
    Preflight,
    TrainConfig,
    Trainer,
    auto_processes,
    init_distributed,
    photo_identity,
    preflight,
    settle_processes,
    usable_cores,
)

TINY = BIDSNetConfig(width=8, channel_mults=(1, 2), cnn_depths=(1,), trans_depths=(1,), cnn_bottleneck_depth=1,
                     trans_bottleneck_depth=1, heads=1, dim_head=8, nb_features=8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return str(folder)


def tiny(photos: str, **changes) -> TrainConfig:
    return dataclasses.replace(TrainConfig.small(), **{
        "model": TINY, "loss": LossConfig.pixel_only(), "size": 32, "stages": (), "lr_g": 5e-4, "batch_size": 2, "steps": 1,
        "data": (photos,), "d_channels": 8, "d_layers": 2, "validate_every": 0, "sample_every": 0, "val_size": 2, **changes})


def test_preflight_gives_what_the_trainer_builds_on(photos, tmp_path):
    checked = preflight(tiny(photos, data=(os.path.relpath(photos),)), tmp_path / "run")
    assert isinstance(checked, Preflight) and checked.config.data == (photos,)  # resolved
    assert checked.checkpoint is None and checked.photos == photo_identity([photos])
    assert checked.loss_fn.vgg is None and sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock"]
    checked.lock.release()
    assert not (tmp_path / "run").exists()  # the checks write nothing but the folder's lock


@pytest.mark.parametrize("config,error,message", [
    ("not a config", TypeError, "config: got str, expected a TrainConfig"),
    (TrainConfig.small(), ValueError, "config.data: got no folders"),
])
def test_preflight_refuses_a_config_it_cannot_train(config, error, message, tmp_path):
    with pytest.raises(error, match=message):
        preflight(config, tmp_path)


def test_preflight_refuses_missing_photos_and_vgg_weights(photos, tmp_path):
    with pytest.raises(ValueError, match="nowhere.* is not a folder"):
        preflight(tiny(photos, data=(str(tmp_path / "nowhere"),)), tmp_path / "run")
    loss = LossConfig(perceptual=0.1, vgg_weights=str(tmp_path / "absent.pth"))
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        preflight(tiny(photos, loss=loss), tmp_path / "run")


def test_only_the_process_that_writes_the_folder_clears_it(photos, tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(ValueError, match="expected a new or empty folder"):
        preflight(tiny(photos), tmp_path)
    preflight(tiny(photos), tmp_path, overwrite=True, clear=False)
    assert (tmp_path / "metrics.jsonl").exists()
    preflight(tiny(photos), tmp_path, overwrite=True)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_a_resume_is_checked_against_the_run(photos, tmp_path):
    Trainer(tiny(photos), tmp_path, progress=False).train()
    checked = preflight(tiny(photos, steps=2), tmp_path, resume=True)
    assert checked.checkpoint["step"] == 1 and checked.photos == photo_identity([photos])
    with pytest.raises(ValueError, match="lr_g: saved 0.0005, given 0.1"):
        preflight(tiny(photos, steps=2, lr_g=0.1), tmp_path, resume=True)
    with pytest.raises(FileNotFoundError, match="there is no such folder"):
        preflight(tiny(photos), tmp_path / "absent", resume=True)


def test_the_trainer_runs_the_preflight_once(photos, tmp_path, monkeypatch):
    """Given the caller's preflight, the Trainer builds on it and checks nothing again."""
    config = tiny(photos)
    checked = preflight(config, tmp_path / "run")

    def again(*args, **kwargs):
        raise AssertionError("preflight ran twice")

    monkeypatch.setattr("bidsnet_lib.train.loop.preflight", again)
    trainer = Trainer(config, tmp_path / "run", progress=False, checked=checked)
    assert trainer.loss_fn is checked.loss_fn and trainer.config == checked.config
    for other in ({"config": dataclasses.replace(config, steps=5)}, {"out_dir": tmp_path / "elsewhere"},
                  {"resume": True}):
        args = {"config": config, "out_dir": tmp_path / "run", "resume": False, **other}
        with pytest.raises(ValueError, match="checked: got 'the preflight of another run'"):
            Trainer(args["config"], args["out_dir"], resume=args["resume"], checked=checked)


def test_bidsnet_train_checks_once_before_it_starts_processes(photos, tmp_path, monkeypatch, capsys):
    """Several processes: rank 0 runs the preflight before starting the others and hands it to
    its Trainer. (Here the other rank is not started: the group has one process.)"""
    calls = []

    def counted(*args, **kwargs):
        calls.append(args)
        return preflight(*args, **kwargs)

    class OneRank:
        def __init__(self, module, args, processes):
            assert module == "bidsnet_lib.commands.train" and args[-2:] == ["--processes", "2"]
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)

        def stop(self, grace):
            calls.append("stopped")

    monkeypatch.setattr("bidsnet_lib.commands.train.preflight", counted)
    monkeypatch.setattr("bidsnet_lib.train.loop.preflight", counted)
    monkeypatch.setattr("bidsnet_lib.commands.train.LocalRanks", OneRank)
    assert main(["--data", photos, "--out", str(tmp_path / "run"), "--size", "32", "--stages", "", "--batch-size", "2",
                 "--processes", "2", "--device", "cpu", "--no-progress"]) == 2
    assert "expected the 1 process(es) running it" in capsys.readouterr().err  # the Trainer got that far
    assert len(calls) == 2 and calls[1] == "stopped" and not dist.is_initialized()
    # A mistake is found before any process starts.
    assert main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"), "--processes", "2",
                 "--batch-size", "2", "--device", "cpu"]) == 2
    assert "nowhere" in capsys.readouterr().err and calls[-1] != "stopped"


def test_an_os_error_at_set_up_is_one_line(photos, tmp_path, capsys):
    """Issue 30 #8's first cases: an --out that cannot be a folder ended in a traceback."""
    (tmp_path / "file").write_text("")
    assert main(["--data", photos, "--out", str(tmp_path / "file" / "run"), "--size", "32", "--stages", "",
                 "--batch-size", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bidsnet train: error: ") and err.count("\n") == 1 and "/file' is a file" in err


def test_processes_split_the_batch_and_several_only_on_a_cpu():
    assert [auto_processes(batch, 2) for batch in (1, 2, 3, 4, 8)] == [1, 2, 1, 2, 2]
    assert auto_processes(4, 16) == 4 and auto_processes(6, 4) == 3 and auto_processes(8, 1) == 1
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)
    assert main(["--out", "x", "--processes", "0"]) == 2
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert settle_processes(TrainConfig.small(), gpu, auto=True).processes == 1
    assert settle_processes(TrainConfig.small(), cpu, auto=True).processes == auto_processes(4, usable_cores())
    two = dataclasses.replace(TrainConfig.small(), processes=2)
    assert settle_processes(two, cpu, auto=True, resume=True).processes == 2  # a resumed run keeps its own
    assert settle_processes(two, cpu, auto=False).processes == 2
    with pytest.raises(ValueError, match="--processes: got 2, expected 1 on a GPU"):
        settle_processes(two, gpu, auto=False)


RANK = textwrap.dedent("""
    import sys, time
    import torch, torch.distributed as dist
    from bidsnet_lib.train import init_distributed

    assert init_distributed() and torch.get_num_threads() == int(sys.argv[1])
    value = torch.tensor([float(dist.get_rank())])
    dist.all_reduce(value)
    if dist.get_rank() == 2:  # a rank that does not end with rank 0
        time.sleep(120)
    dist.destroy_process_group()
""")


def test_local_ranks_join_one_group_and_are_stopped(tmp_path, monkeypatch):
    (tmp_path / "rank_module.py").write_text(RANK)
    # #30.4: `python -m` put the working directory on the ranks' sys.path: a torch.py there broke them.
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / "torch.py").write_text("raise ImportError('the torch.py of the working directory')")
    monkeypatch.chdir(tmp_path / "cwd")
    # A trailing separator, as "dir:" leaves: an empty entry, which Python reads as the working directory.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    threads, share = torch.get_num_threads(), max(1, usable_cores() // 3)
    group = LocalRanks("rank_module", [str(share)], 3)
    try:
        assert dist.get_world_size() == 3 and torch.get_num_threads() == share
        value = torch.tensor([0.0])
        dist.all_reduce(value)
        assert value.item() == 3.0  # ranks 0 + 1 + 2
    finally:
        dist.destroy_process_group()
        group.stop(grace=10)
    assert [rank.returncode for rank in group.ranks] == [0, -9] and torch.get_num_threads() == threads


def test_alone_no_group_is_joined(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_distributed() is False and not dist.is_initialized()


def test_a_rank_dying_before_the_group_forms_ends_rank_0_at_once(tmp_path, monkeypatch):
    """#30.4: rank 0 waited up to 10 minutes in init_process_group, deaf to Ctrl-C."""
    import time

    from bidsnet_lib.train import RankFailed

    start = time.monotonic()
    with pytest.raises(RankFailed, match=r"rank 1 of 2 ended before joining the group \(exit code 1\): "
                                         r".*No module named '?no_such_module_here"):
        LocalRanks("no_such_module_here", [], 2)
    assert time.monotonic() - start < 30 and not dist.is_initialized()

