"""Fast global attention (FAVOR+) and the Transformer stream of BIDS-Net.

Taught in ``notebooks/03_fast_attention.ipynb``; measured in ``bench/attention.py``
(``docs/benchmarks.md``).

Softmax attention ``softmax(Q K^T / sqrt(d)) V`` builds an N x N matrix: at 256 x 256 pixels that
is 4.3e9 entries per head. FAVOR+ (Choromanski et al., 2021, "Rethinking attention with
Performers") writes the softmax kernel, for q and k scaled by d^-1/4, as an expectation over
random vectors w ~ N(0, I):

    exp(q^T k) = E_w[exp(w^T q - |q|^2/2) exp(w^T k - |k|^2/2)],

estimates it with m positive features phi(x) = exp(W x - |x|^2/2) / sqrt(m), and regroups the
product, phi(Q) (phi(K)^T V), so that time and memory are linear in N. Orthogonal rows of W
(with the norms Gaussian rows would have) lower the estimator's variance.

The relative variance of one FAVOR+ kernel estimate is (exp(|q' + k'|^2) - 1) / m: large for
large |q' + k'|. FAVOR++ (Likhosherstov et al., 2022, "Chefs' Random Tables: Non-Trigonometric
Random Features", their optimal positive random features) changes one line,

    phi(x) = D exp(A |w|^2 + B w^T x - |x|^2/2) / sqrt(m),  B = sqrt(1 - 4A),  D = (1 - 4A)^(d/4),

which stays positive and unbiased for every A < 1/4 (A = 0 is FAVOR+), and picks A < 0 per head
and call to minimise the mean over query-key pairs of the log relative second moment,
d log(1 - 4A) - d/2 log(1 - 8A) + d rho / (1 - 8A) with rho = mean |q'_i + k'_j|^2 / d: setting
its derivative to zero gives 16 A^2 + (4 rho - 2) A - rho = 0, whose root below 1/8 is
:func:`optimal_a`; rho takes O(N) (:func:`pair_rho`).
"""

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from bidsnet_lib.cnn import UStream
from bidsnet_lib.plumbing import check_choice, check_finite_float, check_positive_int, got_expected

# 2**x is subnormal below 2**_LOG2_TINY. Features that small (relative to the stabiliser's max)
# are set to exactly 0, as flush-to-zero would: subnormal floats are slow on x86 (microcode
# assists; on large logits this FAVOR+ ran 1.6x slower keeping them with exp, 1.1x with exp2).
# torch.set_flush_denormal is no alternative: it flips a process-wide switch, which a library must
# not do, and measured here it did not remove the cost.
_LOG2_TINY = {torch.float32: math.log2(torch.finfo(torch.float32).tiny),
              torch.float64: math.log2(torch.finfo(torch.float64).tiny)}


def _check_tensor(name: str, t) -> None:
    """Raise unless ``t`` is a floating-point (B, heads, N, dim) tensor."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: got {type(t).__name__}, expected a torch.Tensor")
    if t.dim() != 4:
        raise ValueError(f"{name}: got shape {tuple(t.shape)}, expected (B, heads, N, dim_head)")
    if not t.is_floating_point():
        raise TypeError(f"{name}: got {t.dtype}, expected a floating-point tensor")


def _check_qk(q, k) -> None:
    """Raise unless q, k are floating-point (B, heads, N, dim) tensors that fit together."""
    _check_tensor("q", q)
    _check_tensor("k", k)
    if q.shape[:2] != k.shape[:2]:
        raise ValueError(f"q, k: got shapes {tuple(q.shape)}, {tuple(k.shape)}, expected the same (B, heads)")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q, k: got dim_head {q.shape[-1]} and {k.shape[-1]}, expected the same dim_head")
    if q.shape[-2] == 0 or k.shape[-2] == 0:
        raise ValueError(f"q, k: got {q.shape[-2]} and {k.shape[-2]} tokens, expected at least one token each")


def _check_qkv(q, k, v, dim_head: int | None = None) -> None:
    """Raise unless q, k, v are (B, heads, N, dim) tensors that fit together."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        _check_tensor(name, t)
    if q.shape[:2] != k.shape[:2] or k.shape[:2] != v.shape[:2]:  # before _check_qk: name all three
        raise ValueError(
            f"q, k, v: got shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}, expected the same (B, heads)"
        )
    _check_qk(q, k)
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k, v: got {k.shape[-2]} and {v.shape[-2]} tokens, expected the same number of tokens")
    if dim_head is not None and q.shape[-1] != dim_head:
        raise ValueError(f"q, k: got shape {tuple(q.shape)}, expected dim_head = {dim_head} channels last")


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Exact attention softmax(q k^T / sqrt(d)) v, with its N x N matrix: the reference."""
    _check_qkv(q, k, v)
    scores = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5  # (B, heads, Nq, Nk)
    return scores.softmax(dim=-1) @ v  # (B, heads, Nq, dv)


def draw_features(
    nb_features: int, dim_head: int, ortho: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random projection W (nb_features, dim_head) for FAVOR+: rows distributed as N(0, I).

    With ``ortho`` the rows come in blocks of ``dim_head`` exactly orthogonal directions (QR of
    a Gaussian block), each row then rescaled by the norm of an independent Gaussian vector
    (chi-distributed), so every row still has the N(0, I) distribution the estimator needs.
    Draws on the CPU from ``generator`` (or torch's global generator).
    """
    check_positive_int("nb_features", nb_features)
    check_positive_int("dim_head", dim_head)
    if not ortho:
        return torch.randn(nb_features, dim_head, generator=generator)
    blocks = []
    for _ in range(math.ceil(nb_features / dim_head)):
        q, r = torch.linalg.qr(torch.randn(dim_head, dim_head, generator=generator))
        # Fixing the signs by R's diagonal makes Q uniformly (Haar) distributed.
        blocks.append((q * torch.sign(torch.diagonal(r))).T)  # rows orthonormal
    directions = torch.cat(blocks)[:nb_features]  # (m, d), unit rows
    norms = torch.randn(nb_features, dim_head, generator=generator).norm(dim=1, keepdim=True)
    return directions * norms  # (m, d)


def pair_rho(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """rho = mean over all (query i, key j) of |q'_i + k'_j|^2 / d, q' = q d^-1/4: (B, heads).

    |x_i + y_j|^2 = |x_i|^2 + |y_j|^2 + 2 x_i^T y_j, and the mean over pairs of x_i^T y_j is
    mean(x)^T mean(y): O(N d), never N x N. Computed in fp32 (fp64 stays fp64), no gradient.
    """
    _check_qk(q, k)
    dtype = torch.promote_types(q.dtype, torch.float32)
    with torch.no_grad(), torch.autocast(q.device.type, enabled=False):
        q, k = q.to(dtype), k.to(dtype)
        sq = (torch.linalg.vector_norm(q, dim=(-2, -1)).square() / q.shape[-2]
              + torch.linalg.vector_norm(k, dim=(-2, -1)).square() / k.shape[-2])  # (B, heads)
        cross = (q.mean(-2) * k.mean(-2)).sum(-1)  # (B, heads)
        return (sq + 2 * cross) / q.shape[-1] ** 1.5  # |x'|^2 = |x|^2 / sqrt(d), then / d


def optimal_a(rho: torch.Tensor | float) -> torch.Tensor:
    """FAVOR++'s A = (1 - 2 rho - sqrt((2 rho + 1)^2 + 8 rho)) / 16 for rho >= 0: 0 at rho = 0, < 0 above."""
    rho = torch.as_tensor(rho)
    if not rho.is_floating_point():
        rho = rho.to(torch.get_default_dtype())
    if not torch.isfinite(rho).all() or (rho < 0).any():
        raise ValueError(f"rho: got {rho.tolist() if rho.numel() < 8 else 'a tensor with such values'}, "
                         f"expected finite values >= 0")
    return (1 - 2 * rho - torch.sqrt((2 * rho + 1).square() + 8 * rho)) / 16


def positive_features(x: torch.Tensor, projection: torch.Tensor, a: torch.Tensor | float = 0.0) -> torch.Tensor:
    """phi(x) = D exp(A |w|^2 + B w^T x' - |x'|^2/2) / sqrt(m), x' = x d^-1/4: (..., N, d) -> (..., N, m).

    The features whose products estimate exp(q'^T k') without bias: FAVOR+ at ``a = 0``, FAVOR++
    for A < 0 (``a`` a float or a tensor broadcasting against ``x.shape[:-2]``, one A per head);
    B = sqrt(1 - 4A), D = (1 - 4A)^(d/4). Unstabilised: the reference the fast path is tested on.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x: got {got}, expected a floating-point tensor (..., N, d)")
    if not isinstance(projection, torch.Tensor) or projection.dim() != 2 or projection.shape[1] != x.shape[-1]:
        got = tuple(projection.shape) if isinstance(projection, torch.Tensor) else type(projection).__name__
        raise ValueError(f"projection: got {got}, expected a tensor of shape (m, {x.shape[-1]})")
    a = torch.as_tensor(a, dtype=x.dtype, device=x.device)
    if (a >= 0.25).any():
        raise ValueError(f"a: got {a.max().item()}, expected values < 1/4 (the expectation diverges above)")
    a = a[..., None, None]  # one A per head: broadcast over tokens and features
    m, d = projection.shape
    x = x * d**-0.25
    one_minus = 1 - 4 * a
    logits = (torch.sqrt(one_minus) * (x @ projection.T.to(x.dtype)) + a * projection.square().sum(-1).to(x.dtype)
              - x.square().sum(-1, keepdim=True) / 2 + d / 4 * torch.log(one_minus))
    return torch.exp(logits) / math.sqrt(m)  # (..., N, m)


def exp2_flushed(logits: torch.Tensor, offset: torch.Tensor, floor: float) -> torch.Tensor:
    """2**(logits - offset), exactly 0 below 2**floor; in place when no gradient flows."""
    if logits.requires_grad:
        return torch.exp2(F.threshold(logits - offset, floor, -math.inf))
    return F.threshold_(logits.sub_(offset), floor, -math.inf).exp2_()


FEATURE_KINDS = ("favor", "favor++")


class FastAttention(nn.Module):
    """FAVOR+ (or FAVOR++) attention with positive orthogonal random features, linear in N.

    ``forward(q, k, v)`` maps (B, heads, N, dim_head) tensors to (B, heads, N, dim_head). The
    projection is a buffer (saved in the ``state_dict``); in training mode it is redrawn every
    ``redraw_interval`` calls (``None``: never), in eval mode never. ``kind="favor++"`` computes
    A per batch element and head from that call's own q and k (no gradient flows through A);
    each image's output then depends on its own tokens only, whatever the batch holds.
    """

    # Tokens x heads per chunk and CPU thread: each thread's share of a chunk's (rows, m) features
    # stays in its core's L2 cache, and fewer, larger chunks mean fewer parallel regions.
    chunk_rows = 4096
    # A query whose features meet no key's above the subnormal range has 0/0: eps makes it 0.
    # Any denominator fp32 represents as a normal number is unchanged by it.
    eps = torch.finfo(torch.float32).tiny

    def __init__(self, dim_head: int, nb_features: int = 72, ortho: bool = True,
                 redraw_interval: int | None = 1000, kind: str = "favor"):
        super().__init__()
        self.kind = check_choice("kind", kind, FEATURE_KINDS)
        check_positive_int("dim_head", dim_head)
        check_positive_int("nb_features", nb_features)
        if redraw_interval is not None:
            check_positive_int("redraw_interval", redraw_interval)
        self.dim_head, self.nb_features, self.ortho = dim_head, nb_features, bool(ortho)
        self.redraw_interval = redraw_interval
        self.calls_since_redraw = 0
        self.register_buffer("projection", draw_features(nb_features, dim_head, self.ortho))

    def extra_repr(self) -> str:
        return (f"kind={self.kind!r}, dim_head={self.dim_head}, nb_features={self.nb_features}, "
                f"ortho={self.ortho}, redraw_interval={self.redraw_interval}")

    @torch.no_grad()
    def redraw_features(self, generator: torch.Generator | None = None) -> None:
        """Replace the projection by a fresh draw (in place: device and dtype are kept)."""
        self.projection.copy_(draw_features(self.nb_features, self.dim_head, self.ortho, generator))
        self.calls_since_redraw = 0

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        _check_qkv(q, k, v, self.dim_head)
        if self.training and self.redraw_interval is not None:
            if self.calls_since_redraw >= self.redraw_interval:
                self.redraw_features()
            self.calls_since_redraw += 1
        a = optimal_a(pair_rho(q, k)) if self.kind == "favor++" else None
        return self.attend(q, k, v, self.projection, a)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                projection: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
        """phi(Q) (phi(K)^T V) / phi(Q) (phi(K)^T 1) for q, k (B, h, N, d), v (B, h, N, dv).

        ``a``: None for FAVOR+, or FAVOR++'s A per (batch element, head), shape (B, h). D is a
        constant per head and cancels between numerator and denominator, so it is left out.
        Computed in fp32 (fp64 stays fp64) with autocast off: the denominator sums N positive
        terms that fp16 would flush to zero or overflow. On the CPU tokens are processed in
        chunks whose features stay in cache; keys use a running max (rescaling the sums when it
        grows), which equals the global max at the end.
        """
        B, H, n_q, d = q.shape
        n_k, d_v = v.shape[-2:]
        m, bh = projection.shape[0], B * H
        dtype = torch.promote_types(q.dtype, torch.float32)
        with torch.autocast(q.device.type, enabled=False):
            # Logits in base 2 (exp(x) = 2**(x log2 e)): exp2 runs ~3x faster than exp on the CPU,
            # and the factor costs nothing folded into the projection along with d^-1/4, which
            # scales the inputs: w^T (x d^-1/4) log2(e).
            scale = d**-0.25 * math.log2(math.e)
            wt = (projection.to(dtype) * scale).T.expand(bh, d, m)  # (BH, d, m)
            bias = None  # FAVOR++: A |w|^2 per feature, added by the product itself (baddbmm)
            if a is not None:
                a = a.detach().to(dtype).reshape(bh, 1, 1)
                wt = wt * torch.sqrt(1 - 4 * a)  # B w^T x'
                bias = a * projection.to(dtype).square().sum(-1) * math.log2(math.e)  # (BH, 1, m)

            def project(x: torch.Tensor) -> torch.Tensor:  # (BH, c, d) -> (BH, c, m) logits
                return torch.bmm(x, wt) if bias is None else torch.baddbmm(bias, x, wt)

            q3 = q.to(dtype).reshape(bh, n_q, d)
            k3 = k.to(dtype).reshape(bh, n_k, d)
            v3 = v.to(dtype).reshape(bh, n_k, d_v)
            # -|k d^-1/4|^2 / 2 in base 2: (BH, Nk, 1)
            neg_half_sq = torch.linalg.vector_norm(k3, dim=-1, keepdim=True).square() * (
                -0.5 * d**-0.5 * math.log2(math.e))
            # 1/sqrt(m) goes into the exponent as log2(m)/2: one multiplication fewer.
            shift, floor = 0.5 * math.log2(m), _LOG2_TINY[dtype]
            rows = self.chunk_rows * torch.get_num_threads()
            step = max(1, rows // bh) if q.device.type == "cpu" else max(n_q, n_k)  # tokens a chunk

            kv = q3.new_zeros(bh, m, d_v)  # sum over keys of phi(k) v^T
            k_sum = q3.new_zeros(bh, m)  # sum over keys of phi(k)
            k_max = q3.new_full((bh, 1, 1), -math.inf)
            for i in range(0, n_k, step):
                # (bad)bmm does not keep its output for backward, so adding in place is safe.
                logits = project(k3[:, i:i + step]).add_(neg_half_sq[:, i:i + step])  # (BH, c, m)
                # The stabiliser cancels between numerator and denominator: no gradient.
                new_max = torch.maximum(k_max, logits.detach().amax(dim=(1, 2), keepdim=True))
                phi = exp2_flushed(logits, new_max + shift, floor)  # (BH, c, m)
                rescale = torch.exp2(k_max - new_max)  # sums so far were relative to the old max
                kv = kv * rescale + torch.bmm(phi.transpose(1, 2), v3[:, i:i + step])  # (BH, m, dv)
                k_sum = k_sum * rescale[..., 0] + phi.sum(dim=1)  # (BH, m)
                k_max = new_max
            # One product then yields numerator and denominator: phi(q)^T [kv, k_sum].
            kv = torch.cat([kv, k_sum.unsqueeze(-1)], dim=-1)  # (BH, m, dv + 1)

            # Without autograd each chunk is divided straight into `out`; with it, slices
            # assigned one by one would chain a copy of the whole output per chunk in backward.
            tracked = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, projection))
            out = None if tracked else q3.new_empty(bh, n_q, d_v)
            chunks = []
            for i in range(0, n_q, step):
                logits = project(q3[:, i:i + step])  # (BH, c, m)
                # |q|^2/2 is constant along the row, so the row max absorbs it exactly.
                row_max = logits.detach().amax(dim=-1, keepdim=True)
                phi = exp2_flushed(logits, row_max + shift, floor)  # (BH, c, m)
                num_den = torch.bmm(phi, kv)  # (BH, c, dv + 1)
                num, den = num_den[..., :d_v], num_den[..., d_v:] + self.eps
                if out is None:
                    chunks.append(num / den)
                else:
                    torch.div(num, den, out=out[:, i:i + step])
            if out is None:
                out = torch.cat(chunks, dim=1)  # (BH, Nq, dv)
        return out.view(B, H, n_q, d_v).to(q.dtype)


class SoftmaxAttention(nn.Module):
    """Exact attention in FastAttention's place (PyTorch's fused kernel): the ablation reference."""

    def __init__(self, dim_head: int):
        super().__init__()
        check_positive_int("dim_head", dim_head)
        self.dim_head = dim_head

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        _check_qkv(q, k, v, self.dim_head)
        return F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, dv)


ATTENTIONS = {"favor": FastAttention, "favor++": FastAttention, "softmax": SoftmaxAttention}


def make_attention(kind: str, dim_head: int, nb_features: int = 72, ortho: bool = True,
                   redraw_interval: int | None = 1000) -> nn.Module:
    """The attention module named ``kind``: "favor" or "favor++" (FastAttention), "softmax" (exact)."""
    check_choice("attention", kind, sorted(ATTENTIONS))
    if kind == "softmax":
        return SoftmaxAttention(dim_head)
    return FastAttention(dim_head, nb_features, ortho, redraw_interval, kind)


class TransformerBlock(nn.Module):
    """Pre-norm Transformer block on a feature map (B, dim, H, W) -> (B, dim, H, W).

    Position enters as a conditional positional encoding (Chu et al., 2023, CPVT): a depth-wise
    3x3 convolution added residually. Zero padding tells each token where the border is, and,
    unlike a learned table of positions, it works at any H and W, which inpainting at arbitrary
    sizes needs. Then x + Attn(LN(x)) and x + MLP(LN(x)) over the H*W tokens.
    """

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32, attention: str = "favor",
                 nb_features: int = 72, ortho: bool = True, redraw_interval: int | None = 1000,
                 mlp_ratio: float = 4.0):
        super().__init__()
        for name, value in (("dim", dim), ("heads", heads), ("dim_head", dim_head)):
            check_positive_int(name, value)
        check_finite_float("mlp_ratio", mlp_ratio, 0, low_open=True)
        self.dim, self.heads, self.dim_head = dim, heads, dim_head
        self.pos = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * heads * dim_head)
        self.attn = make_attention(attention, dim_head, nb_features, ortho, redraw_interval)
        self.out = nn.Linear(heads * dim_head, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = max(1, round(dim * mlp_ratio))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.dim:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x: got {got}, expected shape (B, {self.dim}, H, W)")
        b, c, h, w = x.shape
        x = x + self.pos(x)  # (B, C, H, W)
        t = x.flatten(2).transpose(1, 2)  # (B, N, C), N = H*W tokens
        qkv = self.qkv(self.norm1(t)).view(b, h * w, 3, self.heads, self.dim_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, dim_head)
        a = self.attn(q, k, v).transpose(1, 2).reshape(b, h * w, self.heads * self.dim_head)
        t = t + self.out(a)  # (B, N, C)
        t = t + self.mlp(self.norm2(t))
        return t.transpose(1, 2).reshape(b, c, h, w)


class TransformerStream(UStream):
    """The Transformer stream: a U of TransformerBlocks at 1/``patch`` of the input resolution.

    The stem is a strided ``patch`` x ``patch`` convolution (a ViT patch embedding): it cuts the
    token count by ``patch**2`` and attention's cost with it, as the method downsamples the
    Transformer features. Output (B, widths[0], H/patch, W/patch).
    """

    def __init__(self, in_channels: int, widths: Sequence[int], depths: Sequence[int],
                 heads: int = 4, dim_head: int = 32, attention: str = "favor",
                 nb_features: int = 72, patch: int = 2, ortho: bool = True,
                 redraw_interval: int | None = 1000, mlp_ratio: float = 4.0):
        check_positive_int("in_channels", in_channels)
        check_positive_int("patch", patch)
        if len(widths) < 1:
            raise ValueError(got_expected("widths", list(widths), "at least one width"))
        check_positive_int("widths[0]", widths[0])
        check_choice("attention", attention, sorted(ATTENTIONS))
        stem = nn.Conv2d(in_channels, widths[0], patch, stride=patch)  # (B, w0, H/p, W/p)

        def make_block(width: int) -> TransformerBlock:
            return TransformerBlock(width, heads, dim_head, attention, nb_features, ortho,
                                    redraw_interval, mlp_ratio)

        super().__init__(stem, widths, depths, make_block)
        self.patch = patch
