"""bidsnet_lib.train (loop): data order, a step that learns, exact resume, torchrun, the CLI (the config,
the helpers and the run folder's rules: test_train_config.py, test_train_utils.py, test_train_runs.py)."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata
from skimage import transform

from bidsnet_lib import plumbing, vgg
from bidsnet_lib.checkpoint import (
    INFERENCE_FORMAT,
    TRAIN_FORMAT,
    export_inference,
    load_checkpoint,
    load_inference_model,
)
from bidsnet_lib.commands.train import (
    build_parser,
    config_from_args,
    main,
    resume_base,
)
from bidsnet_lib.losses import LossConfig
from bidsnet_lib.model import BIDSNetConfig
from bidsnet_lib.train import (
    EpochSampler,
    TrainConfig,
    Trainer,
    read_metrics,
    read_run_config,
    settle_processes,
)

ROOT = Path(__file__).resolve().parents[1]
# One scale, a few channels, features redrawn every 2 calls (so resume must restore the counters).
TINY = BIDSNetConfig(width=8, channel_mults=(1, 2), cnn_depths=(1,), trans_depths=(1,), cnn_bottleneck_depth=1,
                     trans_bottleneck_depth=1, heads=1, dim_head=8, nb_features=8, redraw_interval=2)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[str, str]:
    """Folders of small real photos (PNG): (train, validation)."""
    root = tmp_path_factory.mktemp("photos")
    (root / "train").mkdir()
    (root / "val").mkdir()
    for i, name in enumerate(("astronaut", "chelsea", "coffee", "rocket", "coins")):
        Image.fromarray(getattr(skdata, name)()).convert("RGB").resize((96, 80)).save(root / "train" / f"{i}.png")
    Image.fromarray(skdata.camera()).convert("RGB").resize((64, 64)).save(root / "val" / "camera.png")
    return str(root / "train"), str(root / "val")


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these tiny models gain nothing from two, and on a shared 2-core
    machine two threads spin-waiting on each other make a step 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def deterministic_restored():
    """The trainer's deterministic flag is process-wide: put it back for the other tests."""
    enabled, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def tiny_config(photos, **changes) -> TrainConfig:
    """A tiny run with the critic on (L1 + adversarial x0.1, R1), a constant rate and one crop side:
    the GAN loop these tests exercise, asked for here (the small preset trains without a critic)."""
    base = dataclasses.replace(
        TrainConfig.small(), model=TINY, loss=LossConfig(adversarial=0.1, perceptual=0.0, style=0.0), size=32,
        stages=(), lr_g=5e-4, lr_schedule="constant", warmup_steps=0, batch_size=2, steps=6, data=(photos[0],),
        val_data=(photos[1],), d_channels=8, d_layers=2, log_every=2, sample_every=3, validate_every=3,
        checkpoint_every=100, val_size=8,
    )
    return dataclasses.replace(base, **changes)


# ------------------------------------------------------------------------------ data order


def test_sampler_resumes_mid_epoch_and_shards_each_epoch():
    full = EpochSampler(10, seed=3)
    stream = [next(it) for it in [iter(full)] for _ in range(35)]
    resumed = EpochSampler(10, seed=3, start=13)
    assert [k for _, k in zip(range(22), resumed, strict=False)] == stream[13:]
    assert sorted(i for e, i in stream if e == 1) == list(range(10))  # an epoch is a permutation
    assert [i for e, i in stream if e == 0] != [i for e, i in stream if e == 1]  # reshuffled
    ranks = [EpochSampler(10, seed=3, rank=r, world_size=2) for r in (0, 1)]
    firsts = [[i for _, (_, i) in zip(range(5), s, strict=False)] for s in ranks]
    assert sorted(firsts[0] + firsts[1]) == list(range(10))
    with pytest.raises(ValueError, match="start: got -1"):
        EpochSampler(10, start=-1)


# ------------------------------------------------------------------------------ training


def test_the_generator_overfits_one_image(photos, tmp_path):
    pixel_only = LossConfig(adversarial=0.0, perceptual=0.0, style=0.0, r1=0.0)
    trainer = Trainer(tiny_config(photos, loss=pixel_only, batch_size=1), tmp_path, progress=False)
    assert trainer.discriminator is None
    photo = transform.resize(skdata.chelsea(), (32, 32), anti_aliasing=True).astype(np.float32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:20, 10:24] = 1
    batch = {"image": torch.from_numpy(photo).permute(2, 0, 1)[None], "mask": mask}
    holes = [trainer.train_step(batch)["hole"].item() for _ in range(100)]
    assert np.mean(holes[-10:]) <= 0.5 * holes[0], (holes[0], holes[-10:])


def test_a_run_writes_logs_samples_validation_and_a_checkpoint(photos, tmp_path):
    trainer = Trainer(tiny_config(photos), tmp_path, progress=False)
    last = trainer.train()
    rows = read_metrics(tmp_path)
    train_rows = [r for r in rows if "g_total" in r]
    assert [r["step"] for r in train_rows] == [2, 4, 6] and last == train_rows[-1]
    assert {"hole", "valid", "adversarial", "d_total", "r1", "g_grad_norm", "steps_per_s"} <= set(last)
    val = [r["val_psnr"] for r in rows if "val_psnr" in r]
    assert [r["step"] for r in rows if "val_psnr" in r] == [0, 3, 6]  # 0: the untrained baseline
    assert all(10 < v < 60 for v in val)
    assert all(0 < r["val_ssim"] < 1 for r in rows if "val_psnr" in r)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_0000003.png", "step_0000006.png"]
    saved = load_checkpoint(tmp_path / "latest.pt", TRAIN_FORMAT)
    assert saved["step"] == 6 and saved["opt_d"] is not None and len(saved["rng"]) == 1
    assert saved["meta"]["vgg_weights"].startswith("none") and saved["meta"]["image_size"] == 32
    assert json.loads((tmp_path / "config.json").read_text()) == trainer.config.to_dict()
    assert read_run_config(tmp_path) == trainer.config


# The schedule levers: a cosine rate after a warm-up, and a first stage at a smaller crop side.
STAGED = {"size": 64, "stages": ((32, 0.5),), "lr_schedule": "cosine", "warmup_steps": 2}


@pytest.mark.parametrize("changes", [{}, STAGED], ids=["constant", "staged"])
def test_k_steps_kill_and_resume_equal_2k_steps(photos, tmp_path, monkeypatch, deterministic_restored, changes):
    config = tiny_config(photos, deterministic=True, checkpoint_every=3, sample_every=0, **changes)
    real_step, sides, rates = Trainer.train_step, [], []

    def records_side_and_rate(self, batch):
        logs = real_step(self, batch)
        sides.append(batch["image"].shape[-1])
        rates.append(self.opt_g.param_groups[0]["lr"])
        return logs

    monkeypatch.setattr(Trainer, "train_step", records_side_and_rate)
    straight = Trainer(config, tmp_path / "straight", progress=False)
    straight.train()
    monkeypatch.undo()
    assert sides == [config.size_at(s) for s in range(6)] == ([32] * 3 + [64] * 3 if changes else [32] * 6)
    assert rates == pytest.approx([config.lr_g * config.lr_factor(s) for s in range(6)])

    # Killed during step 5: step 4 already changed the weights in memory, checkpoint 3 is on disk.
    calls = []

    def dies_in_step_five(self, batch):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_step(self, batch)

    monkeypatch.setattr(Trainer, "train_step", dies_in_step_five)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, tmp_path / "killed", progress=False).train()
    monkeypatch.undo()
    resumed = Trainer(config, tmp_path / "killed", resume=True, progress=False)
    assert resumed.step == 3
    resumed.train()

    for name in ("generator", "ema", "discriminator"):
        a, b = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name} differs after resume"
    assert resumed.opt_g.state_dict()["state"][0]["step"] == 6
    logged = [r["step"] for r in read_metrics(tmp_path / "killed") if "g_total" in r]
    assert logged == [2, 4, 6]  # the log continues without the rows of the lost steps


def test_dataloader_workers_do_not_change_the_batches(photos, tmp_path):
    weights = []
    for workers in (0, 2):
        config = tiny_config(photos, steps=3, num_workers=workers, validate_every=0, sample_every=0)
        trainer = Trainer(config, tmp_path / f"w{workers}", progress=False)
        trainer.train()
        weights.append(trainer.generator.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_resume_guards(photos, tmp_path):
    config = tiny_config(photos, steps=2, validate_every=0, sample_every=0)
    with pytest.raises(FileNotFoundError, match="it holds no run .*drop --resume to start one"):
        Trainer(config, tmp_path, resume=True)
    Trainer(config, tmp_path, progress=False).train()
    with pytest.raises(ValueError, match="already holds a run"):
        Trainer(config, tmp_path)
    with pytest.raises(ValueError, match=r"differs from the run .* in 1 field.*\n  lr_g: saved 0.0005, given 0.5$"):
        Trainer(dataclasses.replace(config, lr_g=0.5), tmp_path, resume=True)
    longer = Trainer(dataclasses.replace(config, steps=3), tmp_path, resume=True, progress=False)
    longer.train()
    assert longer.step == 3
    with pytest.raises(ValueError, match="until: got 1, expected an int >= the current step 3"):
        longer.train(until=1)
    with pytest.raises(ValueError, match="steps: got 2, expected at least the run's step 3"):
        Trainer(config, tmp_path, resume=True)


def test_bfloat16_autocast_on_the_cpu_trains(photos, tmp_path):
    trainer = Trainer(tiny_config(photos, cpu_bf16=True, steps=2, validate_every=0, sample_every=0), tmp_path,
                      progress=False)
    with trainer.autocast():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    row = trainer.train()
    assert np.isfinite(row["g_total"]) and np.isfinite(row["d_total"])
    assert all(p.dtype == torch.float32 for p in trainer.generator.parameters())  # master weights stay fp32


def test_feature_matching_trains_the_generator_and_leaves_the_critic_alone(photos, tmp_path):
    loss = dataclasses.replace(TrainConfig.small().loss, adversarial=0.1, feature_matching=1.0)
    trainer = Trainer(tiny_config(photos, loss=loss, validate_every=0, sample_every=0), tmp_path, progress=False)
    after_d_step = {}  # the critic's gradients as its own step left them
    trainer.opt_d.register_step_post_hook(lambda *_: after_d_step.update(
        {name: p.grad.clone() for name, p in trainer.discriminator.named_parameters()}))
    logs = trainer.train_step(next(iter(trainer.loader())))
    assert logs["feature_matching"] > 0
    # The generator's step (feature matching included) added nothing to the critic's gradients.
    for name, p in trainer.discriminator.named_parameters():
        torch.testing.assert_close(p.grad, after_d_step[name], rtol=0, atol=0, msg=name)


def test_a_random_vgg_is_recorded_in_the_checkpoint(photos, tmp_path):
    loss = LossConfig(perceptual=0.1, style=250.0, vgg_weights="random")
    with pytest.warns(vgg.RandomWeightsWarning):
        trainer = Trainer(tiny_config(photos, loss=loss, steps=1), tmp_path, progress=False)
    row = trainer.train()
    assert row["perceptual"] > 0 and row["style"] > 0
    assert load_checkpoint(tmp_path / "latest.pt")["meta"]["vgg_weights"] == "random"


def test_export_of_a_trained_run_loads_for_inference(photos, tmp_path):
    trainer = Trainer(tiny_config(photos, steps=2, validate_every=0, sample_every=0), tmp_path / "run", progress=False)
    trainer.train()
    out = export_inference(tmp_path / "run", tmp_path / "model.pt")
    assert load_checkpoint(out, INFERENCE_FORMAT)["meta"]["step"] == 2
    model, meta = load_inference_model(out, device="cpu")
    image, mask = trainer.val_images[:2], trainer.val_masks[:2]
    with torch.no_grad():
        torch.testing.assert_close(model(image, mask), trainer.ema(image, mask), rtol=0, atol=5e-3)
    assert meta["image_size"] == 32


# ------------------------------------------------------------------------------ command line


def test_flags_map_onto_the_dataclass():
    args = build_parser().parse_args([
        "--data", "a", "b", "--out", "runs/x", "--steps", "9", "--batch-size", "3", "--size", "48",
        "--lr-g", "0.01", "--no-amp", "--deterministic", "--vgg-weights", "random", "--perceptual", "0.2",
        "--mask-mix", "set1=1,set2/thin=3", "--keep-every", "5", "--stages", "",
    ])
    staged_preset = dataclasses.replace(TrainConfig.small(), stages=((64, 0.7),))
    config = config_from_args(args, staged_preset)
    assert config.data == ("a", "b") and config.steps == 9 and config.batch_size == 3 and config.size == 48
    assert config.stages == () != staged_preset.stages  # "" turns a preset's stages off
    assert config.lr_g == 0.01 and config.amp is False and config.deterministic is True
    assert config.loss.vgg_weights == "random" and config.loss.perceptual == 0.2
    assert config.mask_mix == {"set1": 1.0, "set2/thin": 3.0} and config.keep_every == 5
    assert config.lr_d == TrainConfig.small().lr_d  # untouched fields keep the preset's value
    staged = config_from_args(build_parser().parse_args([
        "--out", "x", "--size", "128", "--stages", "64:0.6,96:0.3", "--lr-schedule", "cosine", "--warmup-steps", "5",
    ]), TrainConfig.small())
    assert staged.stages == ((64, 0.6), (96, 0.3)) and staged.lr_schedule == "cosine" and staged.warmup_steps == 5
    assert main(["--out", "x", "--stages", "64-0.6"]) == 2  # argparse names the expected form
    with pytest.raises(ValueError, match="--vgg-weights random: no effect"):
        config_from_args(build_parser().parse_args(["--out", "x", "--vgg-weights", "random"]), TrainConfig.small())


def test_missing_vgg_weights_is_the_message_a_user_sees(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(plumbing, "reachable", lambda url, timeout=2.0: False)
    code = main(["--preset", "paper", "--data", photos[0], "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("bidsnet train: error: VGG-19 (ImageNet weights, 548 MB, for the perceptual and style losses) needs")
    assert "vgg19-dcbb9e9d.pth" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
    assert main(["--data", photos[0], "--out", str(tmp_path / "r"), "--perceptual", "0.1",
                 "--vgg-weights", str(tmp_path / "absent.pth")]) == 2
    assert "absent.pth" in capsys.readouterr().err


def test_cli_trains_resumes_and_refuses_mixed_flags(photos, tmp_path, capsys):
    common = ["--data", photos[0], "--val-data", photos[1], "--out", str(tmp_path), "--size", "32", "--stages", "",
              "--batch-size", "1", "--no-progress", "--validate-every", "0", "--sample-every", "0"]
    assert main([*common, "--steps", "1"]) == 0
    assert "trained steps 0-1" in capsys.readouterr().out
    assert main(["--out", str(tmp_path), "--resume", "--steps", "2", "--no-progress"]) == 0
    assert "trained steps 1-2" in capsys.readouterr().out
    assert main(["--out", str(tmp_path), "--resume", "--preset", "paper"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("bidsnet train: error: config: differs from the run")
    assert "  model.width: saved 32, given 64" in err and "  batch_size: saved 1, given 8" in err


def test_cli_feature_matching_is_logged_and_needs_the_critic(photos, tmp_path, capsys):
    common = ["--data", photos[0], "--val-data", photos[1], "--size", "32", "--batch-size", "1", "--no-progress",
              "--validate-every", "0", "--sample-every", "0", "--feature-matching", "1"]
    assert main([*common, "--out", str(tmp_path / "run"), "--adversarial", "0.1", "--steps", "2",
                 "--log-every", "1"]) == 0
    rows = [r for r in read_metrics(tmp_path / "run") if "g_total" in r]
    assert [r["step"] for r in rows] == [1, 2] and all(r["feature_matching"] > 0 for r in rows)
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "none"), "--adversarial", "0"]) == 2
    assert capsys.readouterr().err.startswith(
        "bidsnet train: error: feature_matching: got 1.0, expected 0 while adversarial is 0")
    assert not (tmp_path / "none").exists()


def test_two_process_gloo_torchrun_keeps_ranks_identical(photos, tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "bidsnet_lib.commands.train", "--data", photos[0], "--val-data", photos[1], "--out", str(out),
               "--steps", "4", "--size", "32", "--stages", "", "--batch-size", "2", "--log-every", "2", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Its own session, so that a hang kills torchrun's workers too, not only torchrun.
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                           cwd=ROOT, start_new_session=True)
    try:
        stdout, stderr = run.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        raise
    assert run.returncode == 0, stderr[-3000:]
    assert "2 process(es)" in stdout
    rows = read_metrics(out)
    digests = next(r["weights_sha256"] for r in rows if "weights_sha256" in r)
    assert len(digests) == 2 and digests[0] == digests[1]
    saved = load_checkpoint(out / "latest.pt")
    assert saved["step"] == 4 and saved["meta"]["world_size"] == 2 and len(saved["rng"]) == 2


def test_a_config_for_two_processes_is_refused_in_one(photos, tmp_path):
    with pytest.raises(ValueError, match="processes: got 2 in the config, expected the 1 process"):
        Trainer(tiny_config(photos, processes=2), tmp_path, progress=False)


def test_bidsnet_train_splits_the_batch_over_its_processes_stops_on_sigterm_and_resumes(photos, tmp_path):
    """The CPU default (two processes here): rank 0 is the command's own process, a signal to it
    stops both at one step with a checkpoint, and the same command plus --resume keeps the run's
    processes."""
    out = tmp_path / "run"
    flags = ["--data", photos[0], "--val-data", photos[1], "--out", str(out), "--size", "32", "--stages", "",
             "--batch-size", "2",
             "--log-every", "2", "--validate-every", "0", "--sample-every", "0", "--no-progress", "--device", "cpu"]
    # Rank 0 signals itself at step 2; the other rank runs the command unpatched.
    script = ("import os, signal, sys\n"
              "from bidsnet_lib import train\n"
              "from bidsnet_lib.commands.train import main\n"
              "real = train.Trainer.train_step\n"
              "def step(self, batch):\n"
              "    if self.step == 2: os.kill(os.getpid(), signal.SIGTERM)\n"
              "    return real(self, batch)\n"
              "train.Trainer.train_step = step\n"
              "sys.exit(main(sys.argv[1:]))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    first = subprocess.run([sys.executable, "-c", script, *flags, "--steps", "50", "--processes", "2"],
                           capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 128 + signal.SIGTERM, first.stderr[-3000:]
    assert "stopped by SIGTERM at step 3, checkpoint saved" in first.stderr
    saved = load_checkpoint(out / "latest.pt")
    assert saved["step"] == 3 and saved["meta"]["world_size"] == 2 and len(saved["rng"]) == 2
    assert saved["config"]["processes"] == 2 and saved["meta"]["samples_per_rank"] == 3  # batch 2 = 1 + 1
    digests = [r["weights_sha256"] for r in read_metrics(out) if "weights_sha256" in r]
    assert digests and all(len(d) == 2 and d[0] == d[1] for d in digests)
    # The same command plus --resume (auto processes): the run's 2, started as above.
    args = build_parser().parse_args([*flags, "--steps", "4", "--resume"])
    resumed = settle_processes(config_from_args(args, resume_base(args)), torch.device("cpu"),
                               auto=args.processes == "auto", resume=True)
    assert resumed.processes == 2 and resumed.batch_size == 2 and resumed.steps == 4


# ------------------------------------------------------------------------------ warm starts


def test_a_warm_start_begins_at_the_source_checkpoints_validation_psnr(photos, tmp_path):
    source = Trainer(tiny_config(photos, steps=4, validate_every=0, sample_every=0), tmp_path / "a", progress=False)
    source.train()
    exported = export_inference(tmp_path / "a", tmp_path / "a.pt", dtype=torch.float32)
    for init in (tmp_path / "a" / "latest.pt", exported):
        warm = Trainer(tiny_config(photos, init=str(init)), tmp_path / f"warm_{init.stem}", progress=False)
        assert warm.step == 0 and warm.opt_g.state_dict()["state"] == {}  # new run, new optimiser
        assert warm.validate() == pytest.approx(source.validate(), abs=1e-6)
        if init.name == "latest.pt":  # a training checkpoint brings its critic along
            torch.testing.assert_close(warm.discriminator.state_dict(), source.discriminator.state_dict())


def test_a_warm_start_refuses_another_architecture_naming_the_field(photos, tmp_path):
    Trainer(tiny_config(photos, steps=1, validate_every=0, sample_every=0), tmp_path / "a", progress=False).train()
    other = dataclasses.replace(TINY, width=16)
    with pytest.raises(ValueError, match=r"init: .* holds a different model; width: saved 8, given 16"):
        Trainer(tiny_config(photos, model=other, init=str(tmp_path / "a" / "latest.pt")), tmp_path / "b",
                progress=False)


def test_cli_init_takes_the_model_from_the_checkpoint_and_refuses_conflicting_flags(photos, tmp_path, capsys):
    common = ["--data", photos[0], "--val-data", photos[1], "--size", "32", "--stages", "", "--batch-size", "1",
              "--no-progress", "--validate-every", "0", "--sample-every", "0", "--steps", "1"]
    # Not the preset's start (Telea fill, residual head): b can only have it from a's checkpoint.
    assert main([*common, "--out", str(tmp_path / "a"), "--input-fill", "zeros", "--output", "image"]) == 0
    assert main([*common, "--out", str(tmp_path / "b"), "--init", str(tmp_path / "a" / "latest.pt")]) == 0
    model = read_run_config(tmp_path / "b").model
    assert (model.input_fill, model.output) == ("zeros", "image") != (TrainConfig.small().model.input_fill,
                                                                      TrainConfig.small().model.output)
    assert read_run_config(tmp_path / "b").init == str((tmp_path / "a" / "latest.pt").resolve())
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "c"), "--init", str(tmp_path / "a" / "latest.pt"),
                 "--output", "residual"]) == 2
    err = capsys.readouterr().err
    assert "model flags conflict with the checkpoint's model: output: saved 'image', given 'residual'" in err
    assert main([*common, "--out", str(tmp_path / "d"), "--init", str(tmp_path / "absent.pt")]) == 2
    assert "absent.pt', expected a bidsnet-inference checkpoint or a bidsnet-train checkpoint file; there is no file" \
        in capsys.readouterr().err


# ------------------------------------------------------------------------------ issue 13 part 3, issue 17
def test_the_same_command_plus_resume_continues_and_conflicts_are_listed(photos, tmp_path, capsys):
    """Issue 13 part 3: `train ... --out X` then the same line + --resume (a larger --steps extends)."""
    command = ["--preset", "small", "--data", photos[0], "--val-data", photos[1], "--out", str(tmp_path / "run"),
               "--size", "32", "--stages", "", "--batch-size", "1", "--no-progress", "--validate-every", "0",
               "--sample-every", "0"]
    assert main([*command, "--steps", "1"]) == 0
    assert main([*command, "--steps", "2", "--resume"]) == 0
    assert "trained steps 1-2" in capsys.readouterr().out
    # Relative and trailing-slash spellings of the same folder agree (folders compare resolved).
    os.chdir(Path(photos[0]).parent)
    try:
        same = [a.replace(photos[0], "./train/").replace(photos[1], "../" + Path(photos[1]).parent.name + "/val")
                for a in command]
        assert main([*same, "--steps", "3", "--resume"]) == 0
    finally:
        os.chdir(ROOT)
    capsys.readouterr()
    assert main([*command, "--steps", "4", "--resume", "--size", "48", "--lr-g", "0.01"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("bidsnet train: error: config: differs from the run") and "2 field(s)" in err[0]
    assert err[1:] == ["  size: saved 32, given 48", f"  lr_g: saved {TrainConfig.small().lr_g}, given 0.01"]


def test_out_folder_with_files_but_no_checkpoint_is_refused(photos, tmp_path, capsys):
    """#3: --out into a folder without latest.pt overwrote config.json and appended to metrics.jsonl."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "metrics.jsonl").write_text('{"step": 10}\n')
    config = tiny_config(photos, steps=1, validate_every=0, sample_every=0)
    with pytest.raises(ValueError, match="expected a new or empty folder; it holds config.json, metrics.jsonl "
                                         r"\(the files of a run stopped before its first checkpoint\)"):
        Trainer(config, run)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("keep")
    with pytest.raises(ValueError, match=r"thesis.tex \(files that are not a run's\)"):
        Trainer(config, tmp_path / "notes")
    assert (run / "metrics.jsonl").read_text() == '{"step": 10}\n'
    Trainer(config, run, overwrite=True, progress=False).train()
    assert [r["step"] for r in read_metrics(run) if "g_total" in r] == [1]  # no old rows mixed in


def test_resume_of_a_run_killed_before_its_first_checkpoint_says_so(photos, tmp_path):
    """#15: a missing latest.pt said only "no such checkpoint file"; stale temp files are removed (#4)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"checkpoint_every": 100}))
    (run / "metrics.jsonl").write_text('{"step": 10}\n{"step": 20}\n')
    (run / ".latest.pt.123.abcdef12.tmp").write_bytes(b"half")
    with pytest.raises(FileNotFoundError, match="stopped before its first checkpoint at step 100 "
                                                r"\(it had logged up to step 20\).*--overwrite"):
        Trainer(tiny_config(photos), run, resume=True)
    assert not (run / ".latest.pt.123.abcdef12.tmp").exists()


def test_relative_data_is_stored_resolved_and_other_photos_are_refused(photos, tmp_path):
    """#6: a run started with a relative --data, resumed elsewhere, trained on another folder."""
    import shutil

    here = tmp_path / "here"
    shutil.copytree(photos[0], here / "photos")
    config = tiny_config(photos, steps=1, validate_every=0, sample_every=0, data=("photos",))
    os.chdir(here)
    try:
        Trainer(config, tmp_path / "run", progress=False).train()
    finally:
        os.chdir(ROOT)
    assert read_run_config(tmp_path / "run").data == (str(here / "photos"),)
    elsewhere = tmp_path / "elsewhere" / "photos"
    shutil.copytree(photos[0], elsewhere)
    (elsewhere / "0.png").unlink()
    os.chdir(elsewhere.parent)
    try:
        with pytest.raises(ValueError, match=r"do not hold the photos the run trained on \(5 then, 4 now\); "
                                             rf"saved \['{here / 'photos'}'\], given \['{elsewhere}'\]"):
            Trainer(dataclasses.replace(config, steps=2), tmp_path / "run", resume=True)
    finally:
        os.chdir(ROOT)


def test_nan_checkpoint_is_not_resumed(photos, tmp_path):
    """#7's sibling: resuming a diverged run names the tensor instead of training on NaN."""
    from bidsnet_lib.checkpoint import save_checkpoint

    config = tiny_config(photos, steps=1, validate_every=0, sample_every=0)
    Trainer(config, tmp_path, progress=False).train()
    saved = load_checkpoint(tmp_path / "latest.pt")
    name = next(iter(saved["model"]))
    saved["model"][name].view(-1)[0] = float("nan")
    save_checkpoint({k: v for k, v in saved.items() if k not in ("format", "version")}, tmp_path / "latest.pt",
                    TRAIN_FORMAT)
    with pytest.raises(ValueError, match=f"model weights tensor '{name}' holds 1 NaN"):
        Trainer(dataclasses.replace(config, steps=2), tmp_path, resume=True)


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(photos, tmp_path):
    """#4: a run killed before its first checkpoint lost everything; Ctrl-C printed a traceback.
    SIGTERM takes the same path (StopRequest); it is sent in the two-process test above."""
    sig = signal.SIGINT
    run = tmp_path / "run"
    script = (f"import os, signal, sys\n"
              f"from bidsnet_lib import train\n"
              f"from bidsnet_lib.commands.train import main\n"
              f"real = train.Trainer.train_step\n"
              f"def step(self, batch):\n"
              f"    if self.step == 2: os.kill(os.getpid(), {int(sig)})\n"
              f"    return real(self, batch)\n"
              f"train.Trainer.train_step = step\n"
              f"sys.exit(main(sys.argv[1:]))\n")
    run_ = subprocess.run([sys.executable, "-c", script, "--data", photos[0], "--out", str(run), "--size", "32",
                           "--stages", "", "--batch-size", "1", "--steps", "50", "--no-progress", "--validate-every", "0",
                           "--sample-every", "0"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert run_.returncode == 128 + int(sig), run_.stderr
    assert "Traceback" not in run_.stderr
    assert f"stopped by {signal.Signals(sig).name} at step 3, checkpoint saved; continue with: bidsnet train " \
           f"--out {run} --resume" in run_.stderr
    assert load_checkpoint(run / "latest.pt")["step"] == 3
    assert not list(run.glob(".*.tmp"))


def test_a_device_this_machine_lacks_is_one_line(photos, tmp_path, capsys):
    """#11: --device cuda without a GPU (and --device gpu) ended in a traceback."""
    for device, message in (("gpu", "--device: got 'gpu', expected a device name; available here: cpu"),
                            ("cuda:99", "expected a device this machine has")):
        assert main(["--data", photos[0], "--out", str(tmp_path / "run"), "--device", device]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_diverged_run_keeps_its_last_good_checkpoint(photos, tmp_path):
    """Sibling of #7 (work lost): NaN weights never replace latest.pt."""
    trainer = Trainer(tiny_config(photos, steps=1, validate_every=0, sample_every=0), tmp_path, progress=False)
    trainer.train()
    before = (tmp_path / "latest.pt").read_bytes()
    with torch.no_grad():
        next(trainer.generator.parameters()).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="training diverged: .*NaN.*latest.pt was not overwritten"):
        trainer.save_checkpoint()
    assert (tmp_path / "latest.pt").read_bytes() == before


def test_a_crafted_config_in_a_training_checkpoint_is_refused_before_building(photos, tmp_path):
    """Sibling of #12 for resume: the trainer built the model of the saved config before any check."""
    from bidsnet_lib.checkpoint import save_checkpoint

    config = tiny_config(photos, steps=1, validate_every=0, sample_every=0)
    Trainer(config, tmp_path, progress=False).train()
    saved = load_checkpoint(tmp_path / "latest.pt")
    saved["config"]["model"]["width"] = 10**6
    save_checkpoint({k: v for k, v in saved.items() if k not in ("format", "version")}, tmp_path / "latest.pt",
                    TRAIN_FORMAT)
    with pytest.raises(ValueError, match="its model config does not fit its weights"):
        Trainer(read_run_config(tmp_path), tmp_path, resume=True)
