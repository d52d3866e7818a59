"""bidsnet_lib.train (config): TrainConfig, its presets and checks, and the config read back from a
run folder or a checkpoint."""

import dataclasses
import json

import pytest
import torch

from bidsnet_lib.checkpoint import INFERENCE_FORMAT, TRAIN_FORMAT, CheckpointError, save_checkpoint
from bidsnet_lib.losses import LossConfig
from bidsnet_lib.model import BIDSNetConfig
from bidsnet_lib.train import (
    PRESETS,
    RESUME_OVERRIDABLE,
    TrainConfig,
    checkpoint_model_config,
    model_config_differences,
    read_run_config,
)

TINY = BIDSNetConfig(width=8, channel_mults=(1, 2), cnn_depths=(1,), trans_depths=(1,), cnn_bottleneck_depth=1,
                     trans_bottleneck_depth=1, heads=1, dim_head=8, nb_features=8)


def train_checkpoint(path, config: TrainConfig):
    """A training checkpoint holding ``config`` and no weights: all read_run_config looks at."""
    payload = {"step": 0, "model": {}, "ema": {}, "discriminator": None, "opt_g": {}, "opt_d": None,
               "scaler": None, "config": config.to_dict(), "rng": [], "redraw_calls": {}, "meta": {}}
    return save_checkpoint(payload, path, TRAIN_FORMAT)


# ------------------------------------------------------------------------------ moved from test_train.py
def test_presets_are_valid_and_the_small_one_skips_vgg():
    small, paper = TrainConfig.small(), TrainConfig.paper()
    assert paper.model == BIDSNetConfig.paper()
    assert small.loss.perceptual == small.loss.style == 0
    assert paper.loss.perceptual > 0 and paper.loss.vgg_weights == "imagenet" and paper.loss.adversarial > 0
    assert small.size < paper.size and small.num_workers == 0 and paper.amp
    assert set(PRESETS) == {"small", "paper"}


def test_the_small_preset_is_the_today_recipe_of_the_time_to_quality_benchmark():
    small = TrainConfig.small()
    # The shipped model's start on the small architecture: a Telea fill and a residual head.
    assert small.model == dataclasses.replace(BIDSNetConfig.small(), input_fill="telea", output="residual")
    assert (small.loss.adversarial, small.loss.ssim, small.loss.hole, small.loss.valid) == (0.0, 2.0, 6.0, 1.0)
    assert (small.lr_g, small.lr_schedule, small.warmup_steps) == (2e-4, "constant", 0)
    assert (small.stages, small.size, small.batch_size, small.steps) == ((), 128, 4, 2200)
    assert (small.validate_every, small.val_size) == (500, 32)
    assert {small.size_at(s) for s in (0, 1100, 2199)} == {128}
    # The paper's recipe is untouched (not measured at its width): the critic, constant rates, one size.
    paper = TrainConfig.paper()
    assert (paper.lr_g, paper.lr_schedule, paper.warmup_steps, paper.stages) == (2e-4, "constant", 0, ())


def test_config_round_trips_through_json():
    config = dataclasses.replace(TrainConfig.small(), data=("a", "b"), mask_mix={"set1": 1.0})
    plain = json.loads(json.dumps(config.to_dict()))
    assert TrainConfig.from_dict(plain) == config
    with pytest.raises(ValueError, match=r"TrainConfig keys: got unknown \['colour'\], expected some of"):
        TrainConfig.from_dict({**plain, "colour": 1})


@pytest.mark.parametrize("changes,message", [
    ({"batch_size": 0}, "batch_size: got 0, expected an int >= 1"),
    ({"size": 16}, "size: got 16, expected an int >= 32"),
    ({"lr_g": -1.0}, "lr_g: got -1.0, expected a number > 0"),
    ({"ema_decay": 1.0}, "ema_decay: got 1.0, expected a number >= 0 and < 1"),
    ({"betas": (0.5,)}, r"betas: got \(0.5,\), expected two numbers in \[0, 1\)"),
    ({"sample_every": -1}, "sample_every: got -1, expected an int >= 0"),
])
def test_bad_config_values_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(TrainConfig.small(), **changes)


def test_bad_config_types_are_named():
    with pytest.raises(TypeError, match="model: got dict, expected a BIDSNetConfig"):
        TrainConfig(model={})
    with pytest.raises(TypeError, match="data: got 3, expected a list of folder paths"):
        TrainConfig(data=3)
    with pytest.raises(TypeError, match="amp: got 'yes', expected True or False"):
        TrainConfig(amp="yes")
    assert TrainConfig(data="photos").data == ("photos",)


# ------------------------------------------------------------------------------ more checks
@pytest.mark.parametrize("changes,error,message", [
    ({"loss": {}}, TypeError, "loss: got dict, expected a LossConfig"),
    ({"val_data": ["ok", 3]}, TypeError, r"val_data: got \['ok', 3\], expected a list of folder paths"),
    ({"mask_mix": [("set1", 1.0)]}, TypeError, r"mask_mix: got \[\('set1', 1.0\)\], expected a dict"),
    ({"init": 3}, TypeError, "init: got 3, expected a checkpoint path or None"),
    ({"batch_size": True}, TypeError, "batch_size: got True, expected an int"),
    ({"steps": 2.0}, TypeError, "steps: got 2.0, expected an int"),
    ({"seed": -1}, ValueError, "seed: got -1, expected an int >= 0"),
    ({"batch_size": 4, "processes": 3}, ValueError, "processes: got 3, expected a divisor of batch_size 4"),
    ({"lr_d": float("inf")}, ValueError, "lr_d: got inf, expected a number > 0"),
    ({"lr_g": True}, ValueError, "lr_g: got True, expected a number > 0"),
    ({"grad_clip": -0.5}, ValueError, "grad_clip: got -0.5, expected a number >= 0 and < inf"),
    ({"betas": (0.5, 1.0)}, ValueError, r"betas: got \(0.5, 1.0\), expected two numbers in \[0, 1\)"),
    ({"compile": 1}, TypeError, "compile: got 1, expected True or False"),
    ({"lr_schedule": "linear"}, ValueError, "lr_schedule: got 'linear', expected one of \\['constant', 'cosine'\\]"),
    ({"warmup_steps": -1}, ValueError, "warmup_steps: got -1, expected an int >= 0"),
    ({"stages": (64, 0.5)}, TypeError, r"stages: got \(64, 0.5\), expected \(size, share\) pairs"),
    ({"stages": ((40, 0.5),)}, ValueError, r"stages: got \(\(40, 0.5\),\), expected .*\(stride 16, size 128\)"),
    ({"size": 64, "stages": ((64, 0.5),)}, ValueError, "stages: .* sizes multiples of the model's stride below size"),
    ({"size": 64, "stages": ((64, 0.7),)}, ValueError, r"stages: got \(\(64, 0.7\),\), .*size 64\); stages=\(\) trains every step at size"),
    ({"stages": ((32, 0.0),)}, ValueError, "stages share: got 0.0"),
    ({"stages": ((32, 0.5), (32, 0.5))}, ValueError, "shares summing to < 1"),
])
def test_every_kind_of_bad_field_is_named(changes, error, message):
    with pytest.raises(error, match=message):
        dataclasses.replace(TrainConfig.small(), **changes)


def test_stages_and_learning_rate_are_functions_of_the_step():
    config = dataclasses.replace(TrainConfig.small(), model=BIDSNetConfig.small(), size=128, steps=100,
                                 stages=[[32, 0.5], [64, 0.3]], lr_schedule="cosine", warmup_steps=10)
    assert config.stages == ((32, 0.5), (64, 0.3))  # as JSON gives them back: lists
    assert [config.size_at(s) for s in (0, 49, 50, 79, 80, 99)] == [32, 32, 64, 64, 128, 128]
    factors = [config.lr_factor(s) for s in range(100)]
    assert factors[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])  # linear warm-up from 0
    assert factors[10] == 1.0 and factors[55] == pytest.approx(0.5, abs=0.02) and factors[99] < 0.001
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False))  # the decay only falls
    constant = dataclasses.replace(config, lr_schedule="constant", warmup_steps=0, stages=())
    assert {constant.lr_factor(s) for s in range(100)} == {1.0} and constant.size_at(99) == 128
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_paths_become_plain_strings_and_betas_a_tuple(tmp_path):
    config = TrainConfig(data=[tmp_path / "a"], val_data=tmp_path / "b", mask_folder=tmp_path / "m",
                         init=tmp_path / "x.pt", betas=[0, 0.5])
    assert config.data == (str(tmp_path / "a"),) and config.val_data == (str(tmp_path / "b"),)
    assert config.mask_folder == str(tmp_path / "m") and config.init == str(tmp_path / "x.pt")
    assert config.betas == (0.0, 0.5) and isinstance(config.betas[0], float)
    json.dumps(config.to_dict())  # plain data only


def test_from_dict_rebuilds_the_nested_configs_and_rejects_a_non_dict():
    config = dataclasses.replace(TrainConfig.small(), model=TINY, loss=LossConfig(style=1.0))
    again = TrainConfig.from_dict(config.to_dict())
    assert isinstance(again.model, BIDSNetConfig) and again.model == TINY and again.loss.style == 1.0
    with pytest.raises(TypeError, match="data: got list, expected a dict"):
        TrainConfig.from_dict([])


def test_resume_overridable_names_only_fields_that_do_not_change_the_experiment():
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(RESUME_OVERRIDABLE) <= fields
    assert "steps" in RESUME_OVERRIDABLE
    assert not {"model", "loss", "data", "seed", "batch_size", "size", "lr_g"} & set(RESUME_OVERRIDABLE)


# ------------------------------------------------------------------------------ configs read back
def test_model_config_differences_name_each_changed_field():
    assert model_config_differences(TINY, TINY) == []
    other = dataclasses.replace(TINY, width=16, fusion="add")
    assert model_config_differences(TINY, other) == ["width: saved 8, given 16", "fusion: saved 'sff', given 'add'"]


def test_checkpoint_model_config_reads_both_kinds_of_checkpoint(tmp_path):
    inference = save_checkpoint({"model": {}, "config": TINY.to_dict(), "meta": {}}, tmp_path / "i.pt",
                                INFERENCE_FORMAT)
    assert checkpoint_model_config(inference) == TINY
    train = train_checkpoint(tmp_path / "t.pt", dataclasses.replace(TrainConfig.small(), model=TINY))
    assert checkpoint_model_config(train) == TINY
    with pytest.raises(FileNotFoundError, match="checkpoint: got .*absent.pt', expected a bidsnet-inference"):
        checkpoint_model_config(tmp_path / "absent.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="without a 'format' tag"):
        checkpoint_model_config(tmp_path / "plain.pt")


def test_read_run_config_reads_latest_pt_of_a_run_folder(tmp_path):
    config = dataclasses.replace(TrainConfig.small(), model=TINY, data=("photos",), steps=7)
    train_checkpoint(tmp_path / "latest.pt", config)
    assert read_run_config(tmp_path) == config
    with pytest.raises(FileNotFoundError, match="latest.pt', expected a bidsnet-train checkpoint file"):
        read_run_config(tmp_path / "elsewhere")
    save_checkpoint({"model": {}, "config": TINY.to_dict(), "meta": {}}, tmp_path / "inf" / "latest.pt",
                    INFERENCE_FORMAT)
    with pytest.raises(CheckpointError, match="got a bidsnet-inference checkpoint, expected a bidsnet-train"):
        read_run_config(tmp_path / "inf")
