"""FAVOR+ and FAVOR++ attention, the exact reference, the Transformer block and the Transformer stream."""

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from scripts import load_script
from torch.nn import functional as F

from bidsnet_lib.attention import (
    ATTENTIONS,
    FEATURE_KINDS,
    FastAttention,
    SoftmaxAttention,
    TransformerBlock,
    TransformerStream,
    draw_features,
    exp2_flushed,
    make_attention,
    optimal_a,
    pair_rho,
    positive_features,
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
        out = FastAttention(16, nb_features).attend(q, k, v, features)
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
    torch.testing.assert_close(attention.attend(q, k, v, projection), reference)
    attention.chunk_rows = 10**9  # one chunk
    torch.testing.assert_close(attention.attend(q, k, v, projection), reference)


def test_attend_equals_forward_and_allows_cross_attention():
    attention = FastAttention(16, 32).eval()
    q, k, v = gaussian_qkv(2, (1, 2, 30, 16))
    torch.testing.assert_close(attention(q, k, v), attention.attend(q, k, v, attention.projection))
    out = attention(q[:, :, :7], k, v[..., :5])
    assert out.shape == (1, 2, 7, 5)


def test_gradients_match_finite_differences_and_the_no_grad_path():
    q, k, v = (t.requires_grad_() for t in gaussian_qkv(3, (1, 2, 12, 4), dtype=torch.float64))
    attention = FastAttention(4, 8)
    attention.chunk_rows = 2  # 1 token a chunk and thread: several chunks of keys and queries
    projection = attention.projection.double()
    assert torch.autograd.gradcheck(lambda *x: attention.attend(*x, projection), (q, k, v))
    with torch.no_grad():  # the in-place path
        torch.testing.assert_close(attention.attend(q, k, v, projection),
                                   attention.attend(q, k, v, projection.clone()))
        no_grad = attention.attend(q, k, v, projection)
    torch.testing.assert_close(no_grad, attention.attend(q, k, v, projection).detach())


@pytest.mark.parametrize("kind", FEATURE_KINDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_with_large_inputs_stays_finite(dtype, kind):
    q, k, v = gaussian_qkv(4, (1, 2, 64, 16), scale=12.0)
    torch.manual_seed(0)  # the features, so that the precondition below holds on every run
    attention = FastAttention(16, 72, kind=kind)
    # Unstabilised, these features would overflow fp16 and even fp32 (exp(88) is inf).
    assert (q * 16**-0.25 @ attention.projection.T).max() > 88
    out = attention(q.to(dtype), k.to(dtype), v.to(dtype))
    assert out.dtype == dtype and torch.isfinite(out).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        block = TransformerBlock(32, heads=2, dim_head=16, attention=kind)
        y = block(torch.randn(1, 32, 8, 8) * 100)
    assert torch.isfinite(y).all()


def test_subnormal_features_are_flushed_to_zero_on_both_paths():
    logits = torch.tensor([0.0, -100.0, -125.5, -126.5, -300.0])  # base 2
    floor = math.log2(torch.finfo(torch.float32).tiny)  # -126
    expected = torch.tensor([1.0, 2.0**-100, 2.0**-125.5, 0.0, 0.0])
    flushed = exp2_flushed(logits.clone(), torch.tensor(0.0), floor)
    assert torch.equal(flushed, expected)
    with_grad = exp2_flushed(logits.clone().requires_grad_(), torch.tensor(0.0), floor)
    assert torch.equal(with_grad.detach(), expected)


def test_only_queries_needing_gradients_still_get_them():
    q, k, v = gaussian_qkv(11, (1, 2, 20, 16))
    q.requires_grad_()
    FastAttention(16, 24)(q, k, v).sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


@pytest.mark.parametrize("kind", FEATURE_KINDS)
def test_large_logits_give_no_nan_in_fp32(kind):
    q, k, v = gaussian_qkv(5, (1, 1, 50, 16), scale=30.0)
    out = FastAttention(16, 72, kind=kind)(q, k, v)
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
    assert isinstance(exact, SoftmaxAttention) and set(ATTENTIONS) == {"favor", "favor++", "softmax"}
    assert make_attention("favor++", 16).kind == "favor++" and make_attention("favor", 16).kind == "favor"
    q, k, v = gaussian_qkv(9, (1, 2, 20, 16))
    torch.testing.assert_close(exact(q, k, v), softmax_attention(q, k, v))
    with pytest.raises(ValueError, match=r"attention: got 'linear', expected one of \['favor', 'favor\+\+', 'softmax'\]"):
        make_attention("linear", 16)


@pytest.mark.parametrize("kwargs,message", [
    ({"dim_head": 0}, "dim_head: got 0, expected a positive int"),
    ({"dim_head": 16, "nb_features": 2.5}, "nb_features: got 2.5, expected a positive int"),
    ({"dim_head": 16, "redraw_interval": 0}, "redraw_interval: got 0, expected a positive int"),
    ({"dim_head": 16, "kind": "favor+"}, r"kind: got 'favor\+', expected one of \['favor', 'favor\+\+'\]"),
])
def test_fast_attention_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FastAttention(**kwargs)


def test_bad_qkv_are_named():
    attention = FastAttention(16, 8)
    q, k, v = gaussian_qkv(10, (1, 2, 10, 16))
    with pytest.raises(ValueError, match=r"q: got shape \(2, 10, 16\), expected \(B, heads, N, dim_head\)"):
        attention(q[0], k, v)
    with pytest.raises(ValueError, match="k, v: got 10 and 9 tokens, expected the same number of tokens"):
        attention(q, k, v[:, :, :9])
    with pytest.raises(ValueError, match="dim_head = 16"):
        attention(q[..., :8], k[..., :8], v)
    with pytest.raises(TypeError, match="v: got list, expected a torch.Tensor"):
        attention(q, k, [1])
    with pytest.raises(ValueError, match="q, k: got 0 and 10 tokens, expected at least one token each"):
        attention(q[:, :, :0], k, v)
    with pytest.raises(ValueError, match=r"q, k, v: got shapes .*, expected the same \(B, heads\)"):
        softmax_attention(q, k[:, :1], v)


@pytest.mark.parametrize("attention", ["favor", "favor++", "softmax"])
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
    with pytest.raises(ValueError, match=r"x: got \(1, 7, 4, 4\), expected shape \(B, 8, H, W\)"):
        block(torch.randn(1, 7, 4, 4))
    with pytest.raises(ValueError, match="attention: got 'flash', expected one of"):
        TransformerBlock(8, attention="flash")
    with pytest.raises(ValueError, match="mlp_ratio: got 0, expected a finite number > 0"):
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
    with pytest.raises(ValueError, match="attention: got 'exact', expected one of"):
        TransformerStream(4, (8, 16), (1, 1), attention="exact")


def load_bench():
    return load_script("bench/attention.py", "bench_attention")


def test_bench_quick_mode_runs_and_writes_its_table(tmp_path):
    output = tmp_path / "benchmarks.md"
    assert load_bench().main(["--quick", "--output", str(output)]) == 0
    text = output.read_text()
    assert "| 1,024 | SDPA |" in text and "ours (FAVOR+, m = 72)" in text
    assert "| 1,024 | ours (FAVOR++, m = 72) |" in text and "FAVOR++ time / FAVOR+ time at N = 1,024" in text
    assert "On the trained model (`bidsnet_lib/checkpoints/bidsnet_small.pt`" in text and "| trans.encoder.0.0.attn |" in text
    assert "the bound for any choice of one A a layer" in text and "| best A |" in text
    for figure in ("attention_scaling.png", "attention_features.png"):
        assert (tmp_path / figure).stat().st_size > 0


def test_bench_oracle_a_includes_favor_plus():
    """The oracle's grid holds A = 0 and uses the same draws: it can never do worse than FAVOR+."""
    bench = load_bench()
    q, k, v = bench.make_inputs(64, std=0.8, seed=1)
    result = bench.feature_errors(q, k, v, [72], draws=2, oracle=True)
    best_a, best = result["oracle"]
    assert best_a in bench.ORACLE_A and best <= result[("favor", 72)] * (1 + 1e-9)


def test_bench_names_a_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        load_bench().main(["--quick", "--checkpoint", str(tmp_path / "none.pt")])
    assert stop.value.code == 2 and "--checkpoint: no such file" in capsys.readouterr().err


# ----------------------------------------------------------------------------- FAVOR++
def relative_second_moment(a, s, d):
    """E[(phi(x).phi(y))^2] / exp(x'.y')^2 for ONE feature, s = |x' + y'|^2 (the derivation in
    bidsnet_lib.attention): (1 - 4A)^d (1 - 8A)^(-d/2) exp(s / (1 - 8A)); exp(s) at A = 0."""
    return (1 - 4 * a) ** d * (1 - 8 * a) ** (-d / 2) * math.exp(s / (1 - 8 * a))


def test_pair_rho_is_the_mean_over_all_pairs():
    q, k, _ = gaussian_qkv(20, (2, 3, 40, 8), scale=0.7, dtype=torch.float64)
    q = q + 0.3  # a common offset: the cross term mean(q').mean(k') matters
    x, y = q * 8**-0.25, k[:, :, :25] * 8**-0.25  # 40 queries, 25 keys
    brute = (x[:, :, :, None] + y[:, :, None]).square().sum(-1).mean((-2, -1)) / 8  # (B, h), N^2 pairs
    torch.testing.assert_close(pair_rho(q, k[:, :, :25]), brute)
    assert pair_rho(q.half(), k.half()).dtype == torch.float32  # half inputs: fp32 statistics
    with pytest.raises(ValueError, match="q, k: got dim_head 8 and 4, expected the same dim_head"):
        pair_rho(q, k[..., :4])


def test_optimal_a_matches_a_numerical_minimiser_of_the_variance():
    from scipy.optimize import minimize_scalar

    d = 16
    # One pair: rho = |x' + y'|^2 / d, and A must minimise that pair's variance itself.
    for s in (0.5, 4.0, 20.0):
        best = minimize_scalar(lambda a, s=s: relative_second_moment(a, s, d) - 1, bounds=(-20, 0.1249),
                               method="bounded", options={"xatol": 1e-12})
        assert abs(optimal_a(s / d).item() - best.x) < 1e-6
        assert relative_second_moment(optimal_a(s / d).item(), s, d) < relative_second_moment(0.0, s, d)
    # Many pairs: the mean over every (query, key) pair of the log relative second moment,
    # summed pair by pair (no rho in it), is minimised at optimal_a(pair_rho(q, k)).
    q, k, _ = gaussian_qkv(21, (1, 1, 30, d), scale=1.2, dtype=torch.float64)
    x, y = q[0, 0] * d**-0.25, k[0, 0] * d**-0.25
    s_pairs = (x[:, None] + y[None]).square().sum(-1).flatten().tolist()

    def mean_log_moment(a):
        return sum(math.log(relative_second_moment(a, s, d)) for s in s_pairs) / len(s_pairs)

    best = minimize_scalar(mean_log_moment, bounds=(-20, 0.1249), method="bounded", options={"xatol": 1e-12})
    assert abs(optimal_a(pair_rho(q, k)).item() - best.x) < 1e-6
    assert optimal_a(0.0).item() == 0.0 and (optimal_a(torch.tensor([0.1, 1.0, 10.0])) < 0).all()
    with pytest.raises(ValueError, match=r"rho: got \[-0.5\], expected finite values >= 0"):
        optimal_a(torch.tensor([-0.5]))


@pytest.mark.parametrize("a", [0.0, -0.2, "optimal"])
def test_positive_features_are_unbiased_and_positive(a):
    d, m = 8, 256_000  # one estimate from m i.i.d. features: the mean of m one-feature draws
    q, k, _ = gaussian_qkv(22, (1, 1, 3, d), scale=0.8, dtype=torch.float64)
    a = optimal_a(pair_rho(q, k)).item() if a == "optimal" else a
    exact = torch.exp((q[0, 0] * d**-0.25) @ (k[0, 0] * d**-0.25).T)  # (3, 3) kernel values
    w = torch.randn(m, d, generator=torch.Generator().manual_seed(23), dtype=torch.float64)
    phi_q, phi_k = positive_features(q[0, 0], w, a), positive_features(k[0, 0], w, a)
    assert (phi_q > 0).all() and (phi_k > 0).all()
    mean = phi_q @ phi_k.T  # (3, 3) Monte-Carlo means
    s = ((q[0, 0, :, None] + k[0, 0, None]) * d**-0.25).square().sum(-1)
    moment = torch.tensor([relative_second_moment(a, x, d) for x in s.flatten().tolist()], dtype=torch.float64)
    std_err = exact * torch.sqrt((moment.view(3, 3) - 1) / m)  # from the exact variance
    assert ((mean - exact).abs() < 4 * std_err).all(), ((mean - exact) / std_err)


def test_kernel_variance_follows_the_formula_and_favorpp_lowers_it():
    # One pair x = y with s = |x' + y'|^2 = 1.5: small enough for a Monte-Carlo variance to be
    # reliable (the estimates are log-normal; their spread's spread grows like exp(6 s)).
    d, n = 16, 400_000
    x = torch.full((1, d), (1.5 / 4 * d**0.5 / d) ** 0.5, dtype=torch.float64)
    s = (2 * x * d**-0.25).square().sum().item()
    assert abs(s - 1.5) < 1e-9
    w = torch.randn(n, d, generator=torch.Generator().manual_seed(24), dtype=torch.float64)
    exact = math.exp((x * d**-0.25).square().sum().item())
    variance = {}
    for a in (0.0, optimal_a(s / d).item()):
        estimates = positive_features(x, w, a)[0].square() * n  # (n,) one-feature kernel estimates
        variance[a] = estimates.var().item() / exact**2
        assert abs(variance[a] / (relative_second_moment(a, s, d) - 1) - 1) < 0.15
    favor, favorpp = variance.values()
    assert favorpp < 0.85 * favor


def test_a_zero_reproduces_favor_exactly():
    q, k, v = gaussian_qkv(25, (2, 3, 90, 16))
    attention = FastAttention(16, 40)
    attention.chunk_rows = 30  # several chunks
    projection = attention.projection
    assert torch.equal(attention.attend(q, k, v, projection, torch.zeros(2, 3)),
                       attention.attend(q, k, v, projection))
    x = q * 16**-0.25
    favor_phi = torch.exp(x @ projection.T - x.square().sum(-1, keepdim=True) / 2) / math.sqrt(40)
    assert torch.equal(positive_features(q, projection, 0.0), favor_phi)


def test_favorpp_attend_matches_the_formulas_across_chunks():
    q, k, v = gaussian_qkv(26, (2, 3, 100, 16), scale=0.9, dtype=torch.float64)
    attention = FastAttention(16, 72, kind="favor++").eval()
    projection = attention.projection.double()
    a = optimal_a(pair_rho(q, k))  # (B, h): one A per batch element and head
    assert a.shape == (2, 3) and (a < 0).all()
    phi_q, phi_k = positive_features(q, projection, a), positive_features(k, projection, a)
    reference = (phi_q @ (phi_k.transpose(-2, -1) @ v)) / (phi_q @ phi_k.sum(-2).unsqueeze(-1))
    attention.chunk_rows = 6  # 1 token a chunk and thread
    torch.testing.assert_close(attention.attend(q, k, v, projection, a), reference)
    attention.chunk_rows = 10**9
    torch.testing.assert_close(attention(q, k, v), reference.float().double(), rtol=1e-5, atol=1e-6)
    # Each image's A comes from its own tokens: batching does not change an image's output.
    torch.testing.assert_close(attention(q[:1], k[:1], v[:1]), attention(q, k, v)[:1])


def test_favorpp_rows_are_positive_and_sum_to_one_and_no_gradient_reaches_a():
    q, k, _ = gaussian_qkv(27, (1, 2, 50, 16), scale=2.0)
    rows = FastAttention(16, 72, kind="favor++")(q, k, torch.eye(50).expand(1, 2, 50, 50))
    assert (rows >= 0).all()
    torch.testing.assert_close(rows.sum(-1), torch.ones(1, 2, 50))
    q, k, v = (t.requires_grad_() for t in gaussian_qkv(28, (1, 2, 12, 4), dtype=torch.float64))
    attention = FastAttention(4, 8, kind="favor++")
    attention.chunk_rows = 2
    projection = attention.projection.double()
    # With A held fixed the function is smooth: autograd's gradient is the finite-difference one.
    a = optimal_a(pair_rho(q, k))
    assert torch.autograd.gradcheck(lambda *x: attention.attend(*x, projection, a), (q, k, v))
    # forward takes no gradient through A: its gradient is the fixed-A one at the same A.
    (grad_forward,) = torch.autograd.grad(attention(q, k, v).sum(), q)
    (grad_fixed,) = torch.autograd.grad(attention.attend(q, k, v, projection, a).sum(), q)
    torch.testing.assert_close(grad_forward, grad_fixed)


def test_positive_features_reject_bad_arguments():
    w = torch.randn(8, 4)
    with pytest.raises(ValueError, match=r"a: got 0.25, expected values < 1/4"):
        positive_features(torch.randn(3, 4), w, 0.25)
    with pytest.raises(ValueError, match=r"projection: got \(8, 4\), expected a tensor of shape \(m, 5\)"):
        positive_features(torch.randn(3, 5), w)
    with pytest.raises(ValueError, match=r"x: got \(4,\), expected a floating-point tensor"):
        positive_features(torch.randn(4), w)
