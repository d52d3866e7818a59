"""Tests of bidsnet_lib.fusion: alignment, SFF, the fusion factory and BFI."""

import itertools

import pytest
import torch
from torch import nn

from bidsnet_lib.fusion import (
    BFI,
    FUSIONS,
    INTERACTIONS,
    SFF,
    AddFusion,
    Align,
    ConcatFusion,
    make_fusion,
)


@pytest.mark.parametrize("scale,size", [(0.5, (4, 6)), (0.25, (2, 3)), (1, (8, 12)), (2, (16, 24)), (4, (32, 48))])
def test_align_resamples_and_maps_channels(scale, size):
    assert Align(6, 10, scale)(torch.randn(2, 6, 8, 12)).shape == (2, 10, *size)


def test_align_down_averages_before_projecting():
    align = Align(3, 5, 0.5).eval()
    x = torch.randn(1, 3, 4, 4)
    expected = align.norm(align.proj(torch.nn.functional.avg_pool2d(x, 2)))
    torch.testing.assert_close(align(x), expected)


def test_align_up_projects_at_low_resolution_then_interpolates():
    align = Align(3, 5, 2).eval()
    x = torch.randn(1, 3, 4, 4)
    low = align.norm(align.proj(x))
    expected = torch.nn.functional.interpolate(low, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(align(x), expected)


def test_align_up_is_smooth_not_blocky():
    # Bilinear upsampling: neighbouring output pixels inside one 2x2 block generally differ.
    y = Align(4, 4, 2)(torch.randn(1, 4, 6, 6))
    assert not torch.allclose(y[..., 0::2, :], y[..., 1::2, :])


@pytest.mark.parametrize("bad", [0, -2, 3.5, 0.3, True, "2"])
def test_align_rejects_bad_scale(bad):
    with pytest.raises(ValueError, match=r"scale: got .*, expected a positive integer or the inverse of one"):
        Align(4, 4, bad)


def test_sff_weights_are_a_softmax_across_inputs():
    sff = SFF(16, num_inputs=3)
    xs = [torch.randn(2, 16, 5, 5) for _ in range(3)]
    fused, weights = sff(*xs, return_weights=True)
    assert fused.shape == (2, 16, 5, 5) and weights.shape == (2, 3, 16)
    assert (weights > 0).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2, 16))
    expected = sum(weights[:, i, :, None, None] * xs[i] for i in range(3))
    torch.testing.assert_close(fused, expected)
    assert torch.equal(sff.last_weights, weights.detach())


def test_sff_of_identical_inputs_is_that_input():
    x = torch.randn(2, 8, 4, 4)
    torch.testing.assert_close(SFF(8)(x, x), x)


def test_sff_weights_depend_on_the_input():
    sff = SFF(8)
    _, w1 = sff(torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4), return_weights=True)
    _, w2 = sff(torch.randn(1, 8, 4, 4) + 3, torch.randn(1, 8, 4, 4), return_weights=True)
    assert not torch.allclose(w1, w2)


@pytest.mark.parametrize("channels,reduction,min_width,hidden", [(256, 4, 8, 64), (16, 4, 8, 8), (64, 16, 32, 32)])
def test_sff_bottleneck_width_has_a_floor(channels, reduction, min_width, hidden):
    assert SFF(channels, reduction=reduction, min_width=min_width).squeeze[0].out_features == hidden


def test_sff_is_batch_independent():
    sff = SFF(8)
    a, b = torch.randn(3, 8, 4, 4), torch.randn(3, 8, 4, 4)
    torch.testing.assert_close(sff(a, b)[1:2], sff(a[1:2], b[1:2]))


def test_sff_rejects_bad_inputs():
    sff = SFF(8)
    with pytest.raises(ValueError, match="SFF inputs: got 1 tensors, expected 2"):
        sff(torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match=r"SFF inputs: got \(1, 6, 4, 4\), expected \(B, 8, H, W\)"):
        sff(torch.randn(1, 6, 4, 4), torch.randn(1, 6, 4, 4))
    with pytest.raises(ValueError, match=r"SFF inputs: got \[.*\], expected one shape for all"):
        sff(torch.randn(1, 8, 4, 4), torch.randn(1, 8, 2, 2))
    with pytest.raises(ValueError, match="num_inputs: got 1, expected an int >= 2"):
        SFF(8, num_inputs=1)
    with pytest.raises(ValueError, match="reduction: got 0, expected a positive int"):
        SFF(8, reduction=0)


def test_make_fusion_builds_each_kind():
    x, y = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    assert isinstance(make_fusion("sff", 8), SFF)
    assert isinstance(make_fusion("concat", 8), ConcatFusion)
    add = make_fusion("add", 8)
    assert isinstance(add, AddFusion) and list(add.parameters()) == []
    torch.testing.assert_close(add(x, y), x + y)
    for kind in FUSIONS:
        assert make_fusion(kind, 8)(x, y).shape == (2, 8, 4, 4)


def test_make_fusion_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"fusion: got 'mul', expected one of \['add', 'concat', 'sff'\]"):
        make_fusion("mul", 8)


def _pair(batch=2, cnn=8, trans=12, size=8, scale=2):
    return torch.randn(batch, cnn, size, size), torch.randn(batch, trans, size // scale, size // scale)


def test_bfi_bidirectional_shapes_and_equations():
    bfi = BFI(8, 12, scale=2, fusion="add")
    c, t = _pair()
    c_out, t_out = bfi(c, t)
    assert c_out.shape == c.shape and t_out.shape == t.shape
    torch.testing.assert_close(t_out, t + bfi.align_c2t(c))
    torch.testing.assert_close(c_out, c + bfi.align_t2c(t))


@pytest.mark.parametrize("interaction", list(INTERACTIONS))
def test_bfi_disabled_directions_pass_through_and_own_no_parameters(interaction):
    bfi = BFI(8, 12, scale=2, fusion="sff", interaction=interaction)
    c, t = _pair()
    c_out, t_out = bfi(c, t)
    to_trans, to_cnn = INTERACTIONS[interaction]
    assert (t_out is t) == (not to_trans)
    assert (c_out is c) == (not to_cnn)
    assert (bfi.align_c2t is None) == (not to_trans) and (bfi.fuse_t is None) == (not to_trans)
    assert (bfi.align_t2c is None) == (not to_cnn) and (bfi.fuse_c is None) == (not to_cnn)


@pytest.mark.parametrize("fusion,interaction", list(itertools.product(FUSIONS, INTERACTIONS)))
def test_bfi_every_parameter_gets_a_gradient(fusion, interaction):
    bfi = BFI(8, 12, scale=2, fusion=fusion, interaction=interaction)
    c, t = (x.requires_grad_() for x in _pair())
    c_out, t_out = bfi(c, t)
    (c_out.square().mean() + t_out.square().mean()).backward()
    assert [n for n, p in bfi.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []


def test_bfi_same_resolution_streams():
    c, t = _pair(scale=1)
    assert [x.shape for x in BFI(8, 12, scale=1)(c, t)] == [c.shape, t.shape]


def test_bfi_rejects_bad_choices_and_shapes():
    with pytest.raises(ValueError, match=r"interaction: got 'both', expected one of \['bidirectional', 'cnn_to_trans', 'none', 'trans_to_cnn'\]"):
        BFI(8, 12, interaction="both")
    with pytest.raises(ValueError, match=r"fusion: got 'avg', expected one of"):
        BFI(8, 12, fusion="avg")
    with pytest.raises(ValueError, match="scale: got 0, expected a positive int"):
        BFI(8, 12, scale=0)
    bfi = BFI(8, 12)
    c, t = _pair()
    with pytest.raises(ValueError, match=r"c: got \(2, 12, 4, 4\), expected \(B, 8, H, W\)"):
        bfi(t, t)
    with pytest.raises(ValueError, match=r"t: got \(2, 12, 8, 8\), expected \(B, 12, H/2, W/2\) for c of shape \(2, 8, 8, 8\)"):
        bfi(c, torch.randn(2, 12, 8, 8))


def test_bfi_modules_are_registered():
    bfi = BFI(8, 12)
    assert all(isinstance(m, nn.Module) for m in (bfi.align_c2t, bfi.fuse_t, bfi.align_t2c, bfi.fuse_c))
    assert sum(p.numel() for p in bfi.parameters()) > 0
