"""FAVOR+ attention, its exact reference, the Transformer block and the Transformer stream."""

import importlib.util
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from bidsnet_lib.attention import (
    ATTENTIONS,
    FastAttention,
    SoftmaxAttention,
    TransformerBlock,
    TransformerStream,
    _exp2_flushed,
    draw_features,
    make_attention,
    softmax_attention,
)
from bidsnet_lib.cnn import UStream

ROOT = Path(__file__).resolve().parents[1]


def gaussian_qkv(seed, shape=(1, 4, 256, 16), scale=0.5, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(shape, generator=g, dtype=dtype) for _ in range(3))
    return q * scale, k * scale, v


def naive_favor(q, k, v, projection):
    """FAVOR+ written straight from the formulas, with the full (N, m) feature matrices."""
    m, d = projection.shape
    w = projection.to(q.dtype)
    qs, ks = q * d**-0.25, k * d**-0.25
    q_log = qs @ w.T - qs.square().sum(-1, keepdim=True) / 2  # (B, h, N, m)
    k_log = ks @ w.T - ks.square().sum(-1, keepdim=True) / 2
    phi_q = torch.exp(q_log - q_log.amax(-1, keepdim=True)) / math.sqrt(m)
    phi_k = torch.exp(k_log - k_log.amax((-2, -1), keepdim=True)) / math.sqrt(m)
    num = phi_q @ (phi_k.transpose(-2, -1) @ v)  # (B, h, N, dv)
    den = phi_q @ phi_k.sum(-2).unsqueeze(-1)  # (B, h, N, 1)
    return num / den


def relative_error(approx, exact):
    return ((approx - exact).norm() / exact.norm()).item()


def mean_error(nb_features, ortho, seeds=range(8)):
    errors = []
    for seed in seeds:
        q, k, v = gaussian_qkv(seed)
        features = draw_features(nb_features, 16, ortho, torch.Generator().manual_seed(1000 + seed))
        out = FastAttention(16, nb_features)._attend(q, k, v, features)
        errors.append(relative_error(out, softmax_attention(q, k, v)))
    return sum(errors) / len(errors)


def test_softmax_attention_is_exact():
    q, k, v = gaussian_qkv(0, (2, 3, 40, 8), scale=1.0)
    torch.testing.assert_close(softmax_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))


def test_draw_features_blocks_are_orthogonal_with_gaussian_norms():
    w = draw_features(40, 16, ortho=True, generator=torch.Generator().manual_seed(0))
    assert w.shape == (40, 16)
    unit = w / w.norm(dim=1, keepdim=True)
    for block in (unit[:16], unit[16:32], unit[32:]):
        gram = block @ block.T
        torch.testing.assert_close(gram, torch.eye(len(block)), atol=1e-5, rtol=0)
    # Row norms are chi_16 distributed (mean ~ 3.94), not all equal to 1 as QR leaves them.
    norms = draw_features(4096, 16, generator=torch.Generator().manual_seed(1)).norm(dim=1)
    assert abs(norms.mean().item() - 3.94) < 0.05 and norms.std().item() > 0.5


def test_draw_features_is_reproducible_with_a_generator():
    first = draw_features(72, 16, generator=torch.Generator().manual_seed(3))
    again = draw_features(72, 16, generator=torch.Generator().manual_seed(3))
    other = draw_features(72, 16, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert draw_features(10, 16, ortho=False).shape == (10, 16)


def test_error_falls_as_features_grow():
    errors = [mean_error(m, ortho=True) for m in (16, 72, 256)]
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 0.6 * errors[0], errors


def test_orthogonal_features_beat_iid_ones_on_average():
    seeds = range(16)
    assert mean_error(72, ortho=True, seeds=seeds) < mean_error(72, ortho=False, seeds=seeds)


def test_favor_converges_to_exact_attention():
    q, k, v = gaussian_qkv(0, scale=0.3)
    out = FastAttention(16, 4096)(q, k, v)
    assert relative_error(out, softmax_attention(q, k, v)) < 0.05


def test_attend_matches_the_formulas_across_chunks():
    q, k, v = gaussian_qkv(1, (2, 3, 100, 16), dtype=torch.float64)
    attention = FastAttention(16, 72)
    projection = attention.projection.double()
    reference = naive_favor(q, k, v, projection)
    attention.chunk_rows = 6  # 1 token a chunk and thread: the running key max crosses chunks
    torch.testing.assert_close(attention._attend(q, k, v, projection), reference)
    attention.chunk_rows = 10**9  # one chunk
    torch.testing.assert_close(attention._attend(q, k, v, projection), reference)


def test_attend_equals_forward_and_allows_cross_attention():
    attention = FastAttention(16, 32).eval()
    q, k, v = gaussian_qkv(2, (1, 2, 30, 16))
    torch.testing.assert_close(attention(q, k, v), attention._attend(q, k, v, attention.projection))
    out = attention(q[:, :, :7], k, v[..., :5])
    assert out.shape == (1, 2, 7, 5)


def test_gradients_match_finite_differences_and_the_no_grad_path():
    q, k, v = (t.requires_grad_() for t in gaussian_qkv(3, (1, 2, 12, 4), dtype=torch.float64))
    attention = FastAttention(4, 8)
    attention.chunk_rows = 2  # 1 token a chunk and thread: several chunks of keys and queries
    projection = attention.projection.double()
    assert torch.autograd.gradcheck(lambda *x: attention._attend(*x, projection), (q, k, v))
    with torch.no_grad():  # the in-place path
        torch.testing.assert_close(attention._attend(q, k, v, projection),
                                   attention._attend(q, k, v, projection.clone()))
        no_grad = attention._attend(q, k, v, projection)
    torch.testing.assert_close(no_grad, attention._attend(q, k, v, projection).detach())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_with_large_inputs_stays_finite(dtype):
    q, k, v = gaussian_qkv(4, (1, 2, 64, 16), scale=12.0)
    torch.manual_seed(0)  # the features, so that the precondition below holds on every run
    attention = FastAttention(16, 72)
    # Unstabilised, these features would overflow fp16 and even fp32 (exp(88) is inf).
    assert (q * 16**-0.25 @ attention.projection.T).max() > 88
    out = attention(q.to(dtype), k.to(dtype), v.to(dtype))
    assert out.dtype == dtype and torch.isfinite(out).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        block = TransformerBlock(32, heads=2, dim_head=16)
        y = block(torch.randn(1, 32, 8, 8) * 100)
    assert torch.isfinite(y).all()


def test_subnormal_features_are_flushed_to_zero_on_both_paths():
    logits = torch.tensor([0.0, -100.0, -125.5, -126.5, -300.0])  # base 2
    floor = math.log2(torch.finfo(torch.float32).tiny)  # -126
    expected = torch.tensor([1.0, 2.0**-100, 2.0**-125.5, 0.0, 0.0])
    flushed = _exp2_flushed(logits.clone(), torch.tensor(0.0), floor)
    assert torch.equal(flushed, expected)
    with_grad = _exp2_flushed(logits.clone().requires_grad_(), torch.tensor(0.0), floor)
    assert torch.equal(with_grad.detach(), expected)


def test_only_queries_needing_gradients_still_get_them():
    q, k, v = gaussian_qkv(11, (1, 2, 20, 16))
    q.requires_grad_()
    FastAttention(16, 24)(q, k, v).sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_large_logits_give_no_nan_in_fp32():
    q, k, v = gaussian_qkv(5, (1, 1, 50, 16), scale=30.0)
    out = FastAttention(16, 72)(q, k, v)
    assert torch.isfinite(out).all()


def test_65536_tokens_run_in_linear_memory():
    # In a fresh process: the peak resident memory growth during the call (VmHWM after
    # resetting it) must be far below the 17 GB that one 65,536^2 fp32 matrix would need.
    script = textwrap.dedent("""
        import re, torch
        from bidsnet_lib.attention import FastAttention
        def kb(key):
            return int(re.search(key + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
        q, k, v = torch.randn(3, 1, 1, 65536, 16).unbind(0)
        attention = FastAttention(16, 72).eval()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the high-water mark to the current resident size
        before = kb("VmRSS")
        with torch.no_grad():
            out = attention(q, k, v)
        assert out.shape == (1, 1, 65536, 16) and torch.isfinite(out).all()
        print((kb("VmHWM") - before) // 1024)
    """)
    # One thread: on a busy shared machine a second OpenMP thread only waits for a free core.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout.split()[-1])
    inputs_mb = 3 * 65536 * 16 * 4 / 2**20  # 12 MB of q, k, v
    assert peak_mb < 10 * inputs_mb + 64, f"peak {peak_mb} MB"


def test_training_redraws_on_the_interval_and_eval_never():
    attention = FastAttention(16, 24, redraw_interval=2).train()
    q, k, v = gaussian_qkv(6, (1, 1, 8, 16))
    first = attention.projection.clone()
    attention(q, k, v)
    attention(q, k, v)
    assert torch.equal(attention.projection, first)  # two calls on the first draw
    attention(q, k, v)
    second = attention.projection.clone()
    assert not torch.equal(second, first)
    attention.eval()
    for _ in range(5):
        attention(q, k, v)
    assert torch.equal(attention.projection, second)
    never = FastAttention(16, 24, redraw_interval=None).train()
    fixed = never.projection.clone()
    for _ in range(5):
        never(q, k, v)
    assert torch.equal(never.projection, fixed)


def test_redraw_features_uses_the_generator():
    a, b = FastAttention(16, 24), FastAttention(16, 24)
    a.redraw_features(torch.Generator().manual_seed(7))
    b.redraw_features(torch.Generator().manual_seed(7))
    assert torch.equal(a.projection, b.projection)


def test_projection_is_saved_and_loading_restores_outputs():
    attention = FastAttention(16, 24).eval()
    state = attention.state_dict()
    assert set(state) == {"projection"}
    fresh = FastAttention(16, 24).eval()
    q, k, v = gaussian_qkv(8, (1, 2, 20, 16))
    assert not torch.equal(fresh(q, k, v), attention(q, k, v))
    fresh.load_state_dict(state)
    assert torch.equal(fresh(q, k, v), attention(q, k, v))


def test_make_attention_builds_each_kind_and_names_the_valid_ones():
    assert isinstance(make_attention("favor", 16, nb_features=24), FastAttention)
    exact = make_attention("softmax", 16)
    assert isinstance(exact, SoftmaxAttention) and set(ATTENTIONS) == {"favor", "softmax"}
    q, k, v = gaussian_qkv(9, (1, 2, 20, 16))
    torch.testing.assert_close(exact(q, k, v), softmax_attention(q, k, v))
    with pytest.raises(ValueError, match=r"attention must be one of \['favor', 'softmax'\], got 'linear'"):
        make_attention("linear", 16)


@pytest.mark.parametrize("kwargs,message", [
    ({"dim_head": 0}, "dim_head: got 0, expected a positive int"),
    ({"dim_head": 16, "nb_features": 2.5}, "nb_features: got 2.5, expected a positive int"),
    ({"dim_head": 16, "redraw_interval": 0}, "redraw_interval: got 0, expected a positive int"),
])
def test_fast_attention_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FastAttention(**kwargs)


def test_bad_qkv_are_named():
    attention = FastAttention(16, 8)
    q, k, v = gaussian_qkv(10, (1, 2, 10, 16))
    with pytest.raises(ValueError, match=r"q must have shape \(B, heads, N, dim_head\), got \(2, 10, 16\)"):
        attention(q[0], k, v)
    with pytest.raises(ValueError, match="k and v must hold the same number of tokens, got 10 and 9"):
        attention(q, k, v[:, :, :9])
    with pytest.raises(ValueError, match="dim_head = 16"):
        attention(q[..., :8], k[..., :8], v)
    with pytest.raises(TypeError, match="v must be a torch.Tensor, got list"):
        attention(q, k, [1])
    with pytest.raises(ValueError, match="q and k must hold at least one token, got 0 and 10"):
        attention(q[:, :, :0], k, v)
    with pytest.raises(ValueError, match="q, k, v must share"):
        softmax_attention(q, k[:, :1], v)


@pytest.mark.parametrize("attention", ["favor", "softmax"])
def test_transformer_block_keeps_shape_and_trains_every_parameter(attention):
    block = TransformerBlock(24, heads=2, dim_head=8, attention=attention, nb_features=16)
    x = torch.randn(2, 24, 6, 10, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_transformer_block_sees_position_and_rejects_bad_input():
    block = TransformerBlock(8, heads=2, dim_head=4).eval()
    # Attention alone is permutation-equivariant; the depth-wise convolution breaks that.
    x = torch.randn(1, 8, 4, 4)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    permuted = x.flatten(2)[..., perm].view_as(x)
    assert not torch.allclose(block(permuted).flatten(2), block(x).flatten(2)[..., perm], atol=1e-4)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 8, H, W\), got \(1, 7, 4, 4\)"):
        block(torch.randn(1, 7, 4, 4))
    with pytest.raises(ValueError, match="attention must be one of"):
        TransformerBlock(8, attention="flash")
    with pytest.raises(ValueError, match="mlp_ratio must be a positive number, got 0"):
        TransformerBlock(8, mlp_ratio=0)


def test_transformer_stream_is_a_ustream_at_reduced_resolution():
    stream = TransformerStream(4, (16, 32, 48), (1, 1, 1), heads=2, dim_head=8, nb_features=16, patch=2)
    assert isinstance(stream, UStream) and stream.patch == 2
    assert isinstance(stream.encoder[0][0], TransformerBlock)
    x = torch.randn(2, 4, 32, 24)
    assert stream.stem(x).shape == (2, 16, 16, 12)
    assert stream(x).shape == (2, 16, 16, 12)
    exact = TransformerStream(4, (8, 16), (1, 1), heads=2, dim_head=4, attention="softmax", patch=4)
    assert exact(torch.randn(1, 4, 16, 16)).shape == (1, 8, 4, 4)
    assert not any(isinstance(m, FastAttention) for m in exact.modules())
    with pytest.raises(ValueError, match="patch: got 0, expected a positive int"):
        TransformerStream(4, (8, 16), (1, 1), patch=0)
    with pytest.raises(ValueError, match="attention must be one of"):
        TransformerStream(4, (8, 16), (1, 1), attention="exact")


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_attention", ROOT / "bench" / "attention.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_quick_mode_runs_and_writes_its_table(tmp_path):
    output = tmp_path / "benchmarks.md"
    assert load_bench().main(["--quick", "--output", str(output)]) == 0
    text = output.read_text()
    assert "| 1,024 | SDPA |" in text and "ours (FAVOR+, m = 72)" in text
    assert (tmp_path / "attention_scaling.png").stat().st_size > 0
