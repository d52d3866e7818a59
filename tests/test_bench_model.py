"""bench/model.py: the pieces that measure, and a smoke run of ``--quick``."""

import argparse
import dataclasses
import warnings

import pytest
import torch
from course_files import ROOT
from scripts import load_script
from torch import nn

from bidsnet_lib.attention import SoftmaxAttention
from bidsnet_lib.losses import LossConfig
from bidsnet_lib.model import BIDSNet, BIDSNetConfig
from bidsnet_lib.train import TrainConfig, Trainer

BENCH = ROOT / "bench"
# One scale, a few channels: the trainer's whole step at a fraction of the small preset's cost.
TINY = BIDSNetConfig(width=8, channel_mults=(1, 2), cnn_depths=(1,), trans_depths=(1,), cnn_bottleneck_depth=1,
                     trans_bottleneck_depth=1, heads=1, dim_head=8, nb_features=8)
# The critic on (the small preset trains without one): its step, R1 included, is part of what is measured.
TINY_TRAIN = dataclasses.replace(TrainConfig.small(), model=TINY, loss=LossConfig(adversarial=0.1, perceptual=0.0, style=0.0),
                                 size=32, stages=(), d_channels=8, d_layers=2)


@pytest.fixture(scope="module")
def bench():
    """bench/model.py as a module."""
    return load_script("bench/model.py", "bench_model")


def test_tokens_at_first_scale_of_the_bench_models(bench):
    models = bench.build_models(["small"])
    assert bench.tokens_at_first_scale(models["small"], 64) == 32**2
    assert bench.tokens_at_first_scale(models["Transformer-only"], 64) == 32**2
    assert bench.tokens_at_first_scale(models["CNN-only"], 64) == 0


def test_saved_tensors_counts_each_storage_once_and_leaves_parameters_out(bench):
    linear = nn.Linear(8, 8, bias=False)
    x = torch.randn(4, 8, requires_grad=True)
    with bench.SavedTensors(linear) as meter:
        y = linear(x)  # saves x and the weight
        z = y * y  # saves y twice: one storage
    assert meter.nbytes == 2 * 4 * 8 * 4  # x and y, fp32
    with bench.SavedTensors() as everything:
        linear(x) * 2.0
    assert everything.nbytes == 4 * 8 * 4 + 8 * 8 * 4  # x and the weight
    z.sum().backward()  # the hooks hand the tensors back unchanged
    torch.testing.assert_close(x.grad, 2 * (x @ linear.weight.T) @ linear.weight)


def test_saved_tensors_peak_follows_what_backward_lets_go(bench):
    linear = nn.Linear(8, 8, bias=False)
    x = torch.randn(4, 8, requires_grad=True)
    one_graph = 2 * 4 * 8 * 4  # x and y = linear(x), fp32 (the weight is left out)
    with bench.SavedTensors(linear) as meter:
        for _ in range(3):
            y = linear(x)
            (y * y).sum().backward()  # frees this graph before the next one is built
    assert meter.peak == one_graph and meter.held_bytes == 0
    with bench.SavedTensors(linear) as meter:
        graphs = [linear(x) * 2.0 for _ in range(3)]  # all three held: x once, no y saved by "* 2"
    assert meter.peak == meter.held_bytes == 4 * 8 * 4
    with bench.SavedTensors(linear) as meter:
        graphs = [(lambda y: y * y)(linear(x)) for _ in range(3)]
    assert meter.peak == meter.held_bytes == meter.nbytes == 4 * 8 * 4 * (1 + 3)
    del graphs
    assert meter.held_bytes == 0


@pytest.fixture(scope="module")
def tiny_trainer(bench, tmp_path_factory):
    return bench.memory_trainer(TINY_TRAIN, tmp_path_factory.mktemp("memory"))


def test_training_memory_measures_the_trainers_own_step(bench, tiny_trainer, monkeypatch):
    one, two = (bench.training_memory(tiny_trainer, b) for b in (1, 2))
    assert 0 < one < two < 2 * one  # a per-image part and a batch-independent part (the weights' casts, R1)
    # More than the generator's forward alone: the critic step and the generator loss count too.
    image, mask = bench.make_inputs(32, 1)
    with bench.SavedTensors(tiny_trainer.generator) as forward_only:
        tiny_trainer.generator(image, mask)
    assert one > forward_only.peak

    def step(self, batch):  # saves the image for the gradient of w, then lets it go
        w = torch.ones(1, requires_grad=True)
        (batch["image"] * w).sum().backward()

    monkeypatch.setattr(Trainer, "train_step", step)
    assert bench.training_memory(tiny_trainer, 2) == 2 * 3 * 32 * 32 * 4


def test_training_memory_follows_the_trainers_losses(bench, tiny_trainer, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the random VGG-19's warning is expected and silenced
        with_vgg = bench.memory_trainer(dataclasses.replace(TINY_TRAIN, loss=LossConfig()), tmp_path / "vgg")
    assert with_vgg.loss_fn.weights_source == "random"
    no_critic = bench.memory_trainer(dataclasses.replace(TINY_TRAIN, loss=LossConfig.pixel_only()), tmp_path / "l1")
    assert no_critic.discriminator is None
    usual = bench.training_memory(tiny_trainer, 1)
    assert bench.training_memory(no_critic, 1) < usual < bench.training_memory(with_vgg, 1)


def test_flop_counter_counts_the_cpu_attention_kernel(bench):
    b, h, n, d = 1, 2, 64, 16
    q, k, v = (torch.randn(b, h, n, d, requires_grad=True) for _ in range(3))
    counter = bench.flop_counter()
    with counter:
        out = SoftmaxAttention(d)(q, k, v)
    assert counter.get_total_flops() == 2 * b * h * n * n * (d + d)
    with counter:  # entering again starts from 0
        out.sum().backward()
    assert counter.get_total_flops() == 2 * b * h * n * n * (3 * d + 2 * d)


def test_slow_exact_attention_is_skipped_with_the_size_of_its_matrices(bench):
    model = BIDSNet(BIDSNetConfig.small())
    args = argparse.Namespace(max_seconds=60.0, memory_budget=8.0)
    results = {("small", 256): {"train_s": 1.0, "act_bytes": 2**20},
               ("small, softmax", 256): {"train_s": 5.0, "act_bytes": 2**20}}
    # FAVOR+ part x4, exact attention's excess x16: 4 + 64 s.
    assert bench.predict_step(results, "small, softmax", 512) == pytest.approx(68.0)
    reason = bench.skip_reason(model, "small, softmax", 512, results, args)
    assert "65,536 tokens" in reason and "32 GiB in fp32" in reason and "68 s" in reason
    assert bench.skip_reason(model, "small", 512, results, args) is None
    results[("small", 256)]["act_bytes"] = 3 * 2**30
    assert "predicted at 12.0 GiB" in bench.skip_reason(model, "small", 512, results, args)
    assert bench.skip_reason(model, "small", 128, results, args) is None  # nothing at 64 px to go on
    results[("small", 512)] = {"skip": "too slow"}
    assert bench.skip_reason(model, "small", 1024, results, args) == "skipped at 512 px already"


def test_quick_mode_runs_and_writes_its_section(bench, tmp_path):
    output = tmp_path / "benchmarks.md"
    output.write_text("# Benchmarks\n\n<!-- bench/attention.py: begin -->\nkept\n<!-- bench/attention.py: end -->\n")
    threads = torch.get_num_threads()
    assert bench.main(["--quick", "--output", str(output)]) == 0
    assert torch.get_num_threads() == threads  # restored for the rest of the process
    text = output.read_text()
    assert "\nkept\n" in text and "<!-- bench/model.py: end -->" in text
    for row in ("| small | 64 | 749,267 |", "| small, softmax | 32 |", "| CNN-only | 64 |",
                "| Transformer-only | 64 |", "| autocast |", "![time, FLOPs and activations"):
        assert row in text, row
    assert (tmp_path / "model_cost.png").stat().st_size > 0
