"""bench/model.py and bidsnet_lib.reports: the pieces that measure, and a smoke run of ``--quick``."""

import argparse
import importlib.util

import pytest
import torch
from course_files import ROOT
from torch import nn

from bidsnet_lib.attention import SoftmaxAttention
from bidsnet_lib.model import BIDSNet, BIDSNetConfig

BENCH = ROOT / "bench"


@pytest.fixture(scope="module")
def bench():
    """bench/model.py as a module."""
    spec = importlib.util.spec_from_file_location("bench_model", BENCH / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def docs():
    from bidsnet_lib import reports

    return reports


def test_single_streams_match_the_small_preset_within_ten_percent(bench):
    config = BIDSNetConfig.small()
    target = bench.num_parameters(BIDSNet(config))
    image, mask = bench.make_inputs(32, batch=2)
    models = {kind: bench.single_stream(kind, config, target) for kind in bench.STREAMS}
    for kind, model in models.items():
        assert abs(bench.num_parameters(model) - target) <= 0.1 * target, kind
        out = model(image[..., :30, :28], mask[..., :30, :28])  # padded inside, cropped back
        assert out.shape == (2, 3, 30, 28) and 0 <= out.min() and out.max() <= 1
    assert bench.tokens_at_first_scale(models["transformer"], 64) == 32**2
    assert bench.tokens_at_first_scale(models["cnn"], 64) == 0
    # The nearest base width: one step wider or narrower is further from the target.
    base = models["cnn"].stream.widths[0]
    for other in (base - 1, base + 1):
        wider = bench.SingleStream("cnn", config, tuple(other * m for m in config.channel_mults))
        assert abs(bench.num_parameters(wider) - target) >= abs(bench.num_parameters(models["cnn"]) - target)
    with pytest.raises(ValueError, match=r"kind must be one of \['cnn', 'transformer'\], got 'both'"):
        bench.SingleStream("both", config, (8, 8, 8, 8))
    with pytest.raises(ValueError, match="target must be a positive parameter count, got 0"):
        bench.single_stream("cnn", config, 0)


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


def test_write_section_replaces_its_own_section_only(docs, tmp_path):
    path = tmp_path / "benchmarks.md"
    docs.write_section(path, "bench/model.py", "first")
    assert path.read_text() == ("# Benchmarks\n\n<!-- bench/model.py: begin -->\nfirst\n"
                                "<!-- bench/model.py: end -->\n")
    docs.write_section(path, "bench/attention.py", "theirs")
    docs.write_section(path, "bench/model.py", "second\n")
    text = path.read_text()
    assert "first" not in text and text.count("<!-- bench/model.py: begin -->") == 1
    assert text.index("second") < text.index("theirs")  # replaced in place, not moved
    path.write_text(text.replace("<!-- bench/model.py: end -->", ""))
    with pytest.raises(ValueError, match="no '<!-- bench/model.py: end -->' after it"):
        docs.write_section(path, "bench/model.py", "third")
    with pytest.raises(ValueError, match="owner: got '', expected a non-empty name"):
        docs.section_markers("")


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
